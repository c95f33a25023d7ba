// The pure wire layer: constants, errors and every encode/decode, for client and server.
export * from './constants.js';
export * from './errors.js';
export * from './bytes.js';
export * from './cookie.js';
export * from './strings.js';
export * from './handshake.js';
export * from './options.js';
export * from './requests.js';
export * from './replies.js';
export * from './chunks.js';
