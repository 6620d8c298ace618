use super::Config;

// SAFETY: Config is repr(C), Copy, made of u64 fields only (no padding) and
// any bit pattern is valid.
unsafe impl aya::Pod for Config {}
