// Adds the likely fix to errors whose raw wording only makes sense to NBD experts.

export function explain(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  if (/NBD_REP_ERR_TLS_REQD/.test(err.message)) {
    return new Error(
      `${err.message}: the server requires TLS (use an nbds:// or nbds+unix:// URI with tls-psk-file= or tls-certificates=)`,
    );
  }
  return err;
}
