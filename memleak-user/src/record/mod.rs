//! The recorder: drives a sampler at an interval and writes a recording.
