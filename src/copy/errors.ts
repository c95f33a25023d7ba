// Turns the errors of Node's fs layer and of our syscall wrappers into NbdError, with the
// plain strerror-like text a user expects ("No such file or directory", not "ENOENT: ...").
import { NbdError, type ErrnoCode } from '../protocol/errors.js';

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ENOSPC: 'No space left on device',
  EIO: 'Input/output error',
  EROFS: 'Read-only file system',
  EBADF: 'Bad file descriptor',
  EPIPE: 'Broken pipe',
  EINVAL: 'Invalid argument',
  EFBIG: 'File too large',
  EEXIST: 'File exists',
  ENXIO: 'No such device or address',
};

const KNOWN_CODES = new Set<string>([
  'EPERM', 'EIO', 'ENOMEM', 'EINVAL', 'ENOSPC', 'EOVERFLOW', 'ENOTSUP', 'ESHUTDOWN', 'ERANGE',
  'ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPROTO', 'ETIMEDOUT', 'ENOTCONN', 'ECANCELED',
  'EACCES', 'EBADMSG', 'EINTR', 'EEXIST', 'EISDIR', 'ENOTDIR',
]);

function asCode(code: string | undefined): ErrnoCode {
  return code !== undefined && KNOWN_CODES.has(code) ? (code as ErrnoCode) : 'EIO';
}

/** Wraps any error as an NbdError whose message starts with `context`. */
export function wrapError(err: unknown, context: string): NbdError {
  if (err instanceof NbdError) {
    return new NbdError(err.code, `${context}: ${err.message}`, { serverMessage: err.serverMessage, cause: err });
  }
  const sys = err as NodeJS.ErrnoException;
  if (sys && typeof sys.code === 'string') {
    const text = ERRNO_TEXT[sys.code] ?? sys.message.replace(/^[A-Z]+: /, '').replace(/, \w+.*$/, '');
    return new NbdError(asCode(sys.code), `${context}: ${text}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new NbdError('EIO', `${context}: ${message}`, { cause: err });
}
