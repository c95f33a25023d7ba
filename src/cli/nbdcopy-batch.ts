// nbdcopy --batch=FILE: many copies, -j at a time, each with the command line's options and
// its own line's on top. Every line is checked before the first copy starts; a failed copy is
// reported and the others go on (--fail-fast stops them); the exit status is 0 only when all
// succeeded. --shard=I/N runs only this machine's share of the lines.
import fs from 'node:fs';
import { NbdError } from '../protocol/errors.js';
import { copy } from '../copy/api.js';
import { copyMany } from '../copy/copy-many.js';
import { describeSpec, parseEndpointSpec } from '../copy/spec.js';
import { parseNbdcopyArgs, type NbdcopyArgs } from './nbdcopy-args.js';
import { parseBatchFile, selectShard, type BatchJob, type BatchOperand } from './nbdcopy-batch-file.js';
import { copyOptions } from './nbdcopy-copy-options.js';
import { copyOps } from './nbdcopy-ops.js';
import type { ProgressSink } from './progress-sink.js';
import { humanSize } from './progress-format.js';
import { errorLine } from './report-error.js';
import { endBySignal, Interrupted, onStopSignals, type StopSignal } from './signals.js';

interface CheckedJob extends BatchJob {
  args: NbdcopyArgs;
}

function operandWords(o: BatchOperand): string[] {
  return Array.isArray(o) ? ['[', ...o, ']'] : [o];
}

async function readBatchFile(name: string): Promise<string> {
  try {
    if (name !== '-') return fs.readFileSync(name, 'utf8');
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    throw new NbdError('ENOENT', `--batch=${name}: ${(err as Error).message}`);
  }
}

/** The line's options over the command line's, checked as nbdcopy checks its own. */
function checkJob(job: BatchJob, base: NbdcopyArgs): CheckedJob {
  try {
    const args = parseNbdcopyArgs([...job.optionWords, '--', ...operandWords(job.source), ...operandWords(job.destination)], base);
    return { ...job, args };
  } catch (err) {
    throw new NbdError('EINVAL', `batch line ${job.line}: ${(err as Error).message}`);
  }
}

export async function batchCommand(args: NbdcopyArgs): Promise<number> {
  const jobs = parseBatchFile(await readBatchFile(args.batch!), args.batch!).map((j) => checkJob(j, args));
  const mine = selectShard(jobs, args.shard) as CheckedJob[];
  const log = args.verbose ? (line: string) => void process.stderr.write(`nbdcopy: ${line}\n`) : undefined;
  // -p: a bar a running copy (plain labelled lines when stderr is not a terminal).
  const display = args.progress === 'bar' ? await (await import('./nbdcopy-batch-progress.js')).makeBatchProgress() : undefined;
  const say = (line: string) => void (display !== undefined ? display.say(line) : process.stderr.write(`${line}\n`));
  const json = args.progressJson !== false;
  const controller = new AbortController();
  let stopSignal: StopSignal | undefined;
  const removeSignalHandlers = onStopSignals((signal) => {
    if (stopSignal !== undefined) void endBySignal('nbdcopy', signal);
    stopSignal = signal;
    controller.abort(new Interrupted(signal));
  });
  let failed = 0;
  try {
    const outcomes = await copyMany(mine, {
      concurrency: args.jobs,
      failFast: args.failFast,
      signal: controller.signal,
      run: async (job, signal) => {
        const source = parseEndpointSpec(job.args.source);
        const destination = parseEndpointSpec(job.args.destination);
        const name = `batch line ${job.line}: ${describeSpec(source)} -> ${describeSpec(destination)}`;
        const ops = copyOps(job.args, log && ((l) => log(`batch line ${job.line}: ${l}`)), {
          line: job.line, source: describeSpec(source), destination: describeSpec(destination),
        });
        const started = performance.now();
        let progress: ProgressSink | undefined;
        let done = 0;
        try {
          const result = await copy(source, destination, {
            ...copyOptions(job.args),
            ...ops.request,
            signal,
            serverStderr: display === undefined ? undefined : (text) => {
              if (progress !== undefined) progress.write(text);
              else process.stderr.write(text);
            },
            observers: display === undefined ? ops.observers : [{
              async start({ source: opened }) {
                progress = await display.copy(job.line, opened.size);
              },
              done(_offset, length) {
                done += length;
                progress!.update(done);
              },
            }, ...ops.observers],
          });
          progress?.finish();
          ops.succeeded(result);
          // Said before the bar goes, so it lands above the bars still running.
          if (!json) say(`nbdcopy: ${name}: copied ${humanSize(result.bytes)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
          progress?.stop();
          return result;
        } catch (err) {
          const reason = signal.aborted && signal.reason instanceof Interrupted ? signal.reason : err;
          ops.failed(reason);
          if (!json) say(errorLine('nbdcopy', new Error(`${name}: ${(reason as Error).message ?? String(reason)}`)));
          progress?.stop(true);
          throw reason;
        }
      },
      onOutcome: (outcome, job) => {
        if (outcome.status === 'skipped') {
          if (json) fs.writeSync(args.progressJson === false ? 2 : args.progressJson.fd, `${JSON.stringify({ event: 'skipped', line: job.line })}\n`);
          else say(`nbdcopy: batch line ${job.line}: not started (--fail-fast)`);
        }
      },
    });
    failed = outcomes.filter((o) => o.status !== 'fulfilled').length;
  } finally {
    display?.stop();
    removeSignalHandlers();
  }
  if (stopSignal !== undefined) return endBySignal('nbdcopy', stopSignal);
  if (failed > 0) throw new NbdError('EIO', `${failed} of ${mine.length} copies did not succeed`);
  return 0;
}
