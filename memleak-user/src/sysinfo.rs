//! Facts about the machine recorded with each run (host, kernel, memory limits).
