// Numbers of the NBD wire protocol, named as the protocol document names them.
// Pure data: shared by the client and the embedded server.

/** 'NBDMAGIC', the first eight bytes every server sends. */
export const NBDMAGIC = 0x4e42444d41474943n;
/** Second magic of the oldstyle handshake. */
export const CLISERV_MAGIC = 0x00420281861253n;
/** 'IHAVEOPT': newstyle handshake magic, and the prefix of every option. */
export const IHAVEOPT = 0x49484156454f5054n;
/** Magic of every fixed-newstyle option reply. */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;

export const REQUEST_MAGIC = 0x25609513;
export const EXTENDED_REQUEST_MAGIC = 0x21e41c71;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
export const EXTENDED_REPLY_MAGIC = 0x6e8a278c;

/** Sizes of fixed wire structures, in bytes. */
export const OLDSTYLE_HANDSHAKE_SIZE = 8 + 8 + 8 + 4 + 124;
export const COMPACT_REQUEST_SIZE = 28;
export const EXTENDED_REQUEST_SIZE = 32;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_REPLY_SIZE = 20;
export const EXTENDED_REPLY_SIZE = 32;
export const OPTION_HEADER_SIZE = 16;
export const OPTION_REPLY_HEADER_SIZE = 20;
/** Reply to NBD_OPT_EXPORT_NAME without the 124 reserved zero bytes. */
export const EXPORT_NAME_REPLY_SHORT = 10;
export const EXPORT_NAME_REPLY_ZEROES = 124;

/** Handshake flags (server -> client, 16 bits). */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;

/** Client flags (client -> server, 32 bits). */
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (16 bits). */
export const FLAG_HAS_FLAGS = 1 << 0;
export const FLAG_READ_ONLY = 1 << 1;
export const FLAG_SEND_FLUSH = 1 << 2;
export const FLAG_SEND_FUA = 1 << 3;
export const FLAG_ROTATIONAL = 1 << 4;
export const FLAG_SEND_TRIM = 1 << 5;
export const FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const FLAG_SEND_DF = 1 << 7;
export const FLAG_CAN_MULTI_CONN = 1 << 8;
export const FLAG_SEND_RESIZE = 1 << 9;
export const FLAG_SEND_CACHE = 1 << 10;
export const FLAG_SEND_FAST_ZERO = 1 << 11;
export const FLAG_BLOCK_STATUS_PAYLOAD = 1 << 12;

/** Options. */
export const OPT_EXPORT_NAME = 1;
export const OPT_ABORT = 2;
export const OPT_LIST = 3;
export const OPT_PEEK_EXPORT = 4;
export const OPT_STARTTLS = 5;
export const OPT_INFO = 6;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_LIST_META_CONTEXT = 9;
export const OPT_SET_META_CONTEXT = 10;
export const OPT_EXTENDED_HEADERS = 11;

/** Option reply types. Errors have bit 31 set. */
export const REP_ACK = 1;
export const REP_SERVER = 2;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
export const REP_FLAG_ERROR = 0x80000000;
export const REP_ERR_UNSUP = REP_FLAG_ERROR + 1;
export const REP_ERR_POLICY = REP_FLAG_ERROR + 2;
export const REP_ERR_INVALID = REP_FLAG_ERROR + 3;
export const REP_ERR_PLATFORM = REP_FLAG_ERROR + 4;
export const REP_ERR_TLS_REQD = REP_FLAG_ERROR + 5;
export const REP_ERR_UNKNOWN = REP_FLAG_ERROR + 6;
export const REP_ERR_SHUTDOWN = REP_FLAG_ERROR + 7;
export const REP_ERR_BLOCK_SIZE_REQD = REP_FLAG_ERROR + 8;
export const REP_ERR_TOO_BIG = REP_FLAG_ERROR + 9;
export const REP_ERR_EXT_HEADER_REQD = REP_FLAG_ERROR + 10;

/** NBD_INFO_* items inside NBD_REP_INFO and requested by OPT_INFO / OPT_GO. */
export const INFO_EXPORT = 0;
export const INFO_NAME = 1;
export const INFO_DESCRIPTION = 2;
export const INFO_BLOCK_SIZE = 3;

/** Commands. */
export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_CACHE = 5;
export const CMD_WRITE_ZEROES = 6;
export const CMD_BLOCK_STATUS = 7;
export const CMD_RESIZE = 8;

/** Command flags (16 bits). */
export const CMD_FLAG_FUA = 1 << 0;
export const CMD_FLAG_NO_HOLE = 1 << 1;
export const CMD_FLAG_DF = 1 << 2;
export const CMD_FLAG_REQ_ONE = 1 << 3;
export const CMD_FLAG_FAST_ZERO = 1 << 4;
export const CMD_FLAG_PAYLOAD_LEN = 1 << 5;

/** Structured / extended reply flags and chunk types. Error chunk types have bit 15 set. */
export const REPLY_FLAG_DONE = 1 << 0;
export const REPLY_TYPE_NONE = 0;
export const REPLY_TYPE_OFFSET_DATA = 1;
export const REPLY_TYPE_OFFSET_HOLE = 2;
export const REPLY_TYPE_BLOCK_STATUS = 5;
export const REPLY_TYPE_BLOCK_STATUS_EXT = 6;
export const REPLY_TYPE_FLAG_ERROR = 1 << 15;
export const REPLY_TYPE_ERROR = REPLY_TYPE_FLAG_ERROR + 1;
export const REPLY_TYPE_ERROR_OFFSET = REPLY_TYPE_FLAG_ERROR + 2;

/** base:allocation status bits. */
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;

/** Error values on the wire (they match Linux errno numbers). */
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

export const DEFAULT_PORT = 10809;
/** Meta context names with a fixed meaning. */
export const CONTEXT_BASE_ALLOCATION = 'base:allocation';
/** Largest string (export name, description, context name) the protocol allows. */
export const MAX_STRING = 4096;
/** Payload limit a client may assume when the server states no maximum block size. */
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
