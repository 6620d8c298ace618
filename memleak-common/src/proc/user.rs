use super::ProcState;

// SAFETY: ProcState is repr(C), Copy, has no padding holes (all fields are
// naturally aligned and sized to fill the struct) and any bit pattern is valid.
unsafe impl aya::Pod for ProcState {}
