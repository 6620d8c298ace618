//! Choosing the sampler: eBPF when it can load, procfs otherwise.

use std::time::Duration;

use crate::sample::ebpf::{EbpfHook, EbpfSampler};
use crate::sample::procfs::ProcfsSampler;
use crate::sample::{SampleError, Sampler, Scope};

/// The sampler a user asks for (`--sampler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplerChoice {
    /// eBPF when it can load, else procfs (and say why).
    Auto,
    /// eBPF only: fail when it cannot load.
    Ebpf,
    /// procfs only: no privileges needed.
    Procfs,
}

/// Opens the chosen sampler; returns it with a sentence saying why it was
/// chosen (recorded in the run metadata and shown to the user).
pub fn open(
    choice: SamplerChoice,
    scope: Scope,
    self_pid: u32,
    max_procs: u32,
    interval: Duration,
    hook: EbpfHook,
) -> Result<(Box<dyn Sampler>, String), SampleError> {
    let procfs = |scope| -> Result<Box<dyn Sampler>, SampleError> {
        let mut s = ProcfsSampler::new(scope, self_pid)?;
        s.set_interval(interval);
        Ok(Box::new(s))
    };
    match choice {
        SamplerChoice::Ebpf => {
            let s = EbpfSampler::with_hook(scope, self_pid, max_procs, hook)?;
            Ok((
                Box::new(s),
                "eBPF sampler requested (--sampler ebpf)".into(),
            ))
        }
        SamplerChoice::Procfs => Ok((
            procfs(scope)?,
            "procfs sampler requested (--sampler procfs)".into(),
        )),
        SamplerChoice::Auto => {
            match EbpfSampler::with_hook(scope.clone(), self_pid, max_procs, hook) {
                Ok(s) => Ok((Box::new(s), "eBPF sampler loaded".into())),
                Err(e) => {
                    // The error's Debug form, for MEMLEAK_LOG=debug; the
                    // reason below is the one line users see.
                    tracing::debug!(error = ?e, "eBPF sampler did not load");
                    Ok((
                        procfs(scope)?,
                        format!(
                            "using the procfs sampler because the eBPF sampler could not load: {e}"
                        ),
                    ))
                }
            }
        }
    }
}
