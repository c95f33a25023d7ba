// copyMany: at most `concurrency` jobs at once, every job gets an outcome in order, a failure
// leaves the others going, and failFast stops the running ones and starts no more.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyMany, type CopyJob } from '../src/copy/copy-many.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('copyMany', () => {
  it('runs at most `concurrency` jobs at once and keeps the jobs\' order in the outcomes', async () => {
    let running = 0;
    let most = 0;
    const outcomes = await copyMany([5, 1, 4, 2, 3, 1, 2], {
      concurrency: 3,
      run: async (ms: number) => {
        running++;
        most = Math.max(most, running);
        await sleep(ms * 5);
        running--;
        return ms * 10;
      },
    });
    expect(most).toBe(3);
    expect(outcomes.map((o) => o.status === 'fulfilled' ? o.result : o.status)).toEqual([50, 10, 40, 20, 30, 10, 20]);
  });

  it('a failure is reported and the other jobs go on', async () => {
    const ended: number[] = [];
    const outcomes = await copyMany([1, 2, 3, 4], {
      concurrency: 2,
      run: async (n: number) => {
        await sleep(n * 5);
        if (n === 2) throw new Error('two failed');
        return n;
      },
      onOutcome: (o) => ended.push(o.index),
    });
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((outcomes[1] as { error: Error }).error.message).toBe('two failed');
    expect(ended.sort()).toEqual([0, 1, 2, 3]);
  });

  it('failFast: the running jobs are told to stop and the rest never start', async () => {
    const started: number[] = [];
    const outcomes = await copyMany([1, 2, 3, 4, 5], {
      concurrency: 2,
      failFast: true,
      run: async (n: number, signal) => {
        started.push(n);
        if (n === 1) {
          await sleep(5);
          throw new Error('one failed');
        }
        await new Promise((resolve, reject) => {
          const t = setTimeout(resolve, 5000);
          signal.addEventListener('abort', () => {
            clearTimeout(t);
            reject(new Error('stopped'));
          });
        });
        return n;
      },
    });
    expect(started).toEqual([1, 2]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'skipped', 'skipped', 'skipped']);
    expect((outcomes[1] as { error: Error }).error.message).toBe('stopped');
  });

  it('refuses a concurrency below 1', async () => {
    await expect(copyMany([], { concurrency: 0 })).rejects.toThrow('concurrency must be a whole number of at least 1');
  });

  it('copies real files by default (copy), each with its own options', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'copy-many-'));
    try {
      const jobs: CopyJob[] = [0, 1, 2].map((i) => {
        const src = path.join(dir, `s${i}`);
        fs.writeFileSync(src, Buffer.alloc(100_000 + i, i + 1));
        return { source: src, destination: path.join(dir, `d${i}`), options: { requestSize: 4096 * (i + 1) } };
      });
      jobs.push({ source: path.join(dir, 'missing'), destination: path.join(dir, 'd3'), options: {} });
      const outcomes = await copyMany(jobs, { concurrency: 2 });
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
      for (let i = 0; i < 3; i++) expect(fs.readFileSync(path.join(dir, `d${i}`))).toEqual(fs.readFileSync(path.join(dir, `s${i}`)));
      expect(fs.existsSync(path.join(dir, 'd3'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
