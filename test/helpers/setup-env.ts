// Dawn prints a harmless complaint when XDG_RUNTIME_DIR is unset.
process.env.XDG_RUNTIME_DIR ??= '/tmp';
