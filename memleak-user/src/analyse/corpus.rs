//! The labelled corpus as generated series: the synthetic equivalents of
//! the real workloads `cargo xtask corpus` records (`memleak-workload`
//! subcommands of the same names), for unit tests of every model.
//!
//! Each case is 600 s at 1 s of one process's resident memory, judged
//! against a 1 GiB limit (a CI container) with a 1 h horizon. Noise is
//! seeded, so a case and seed always give the same series.

use super::limits::{Limit, LimitSource};

pub const MIB: f64 = 1024.0 * 1024.0;

/// The limit the synthetic cases are judged against.
pub const LIMIT: Limit = Limit {
    bytes: Some(1024.0 * MIB),
    source: LimitSource::Process(crate::sample::proclimits::LimitKind::CgroupMax),
};

/// Length of each synthetic case, seconds (one point a second).
pub const SECONDS: usize = 600;

/// One labelled case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// Also the `memleak-workload` subcommand and the process name the
    /// real corpus runs it under.
    pub name: &'static str,
    pub leak: bool,
    pub about: &'static str,
}

/// Every case, leaks first.
pub const CASES: [Case; 11] = [
    Case {
        name: "steady-leak",
        leak: true,
        about: "heap grows at a constant rate, never freed",
    },
    Case {
        name: "slow-leak",
        leak: true,
        about: "slow growth buried in allocation noise wider than a minute's growth",
    },
    Case {
        name: "thread-leak",
        leak: true,
        about: "a thread that is never joined leaks, in steps",
    },
    Case {
        name: "sawtooth-leak",
        leak: true,
        about: "grows, is partly freed, grows again: the minima rise",
    },
    Case {
        name: "gchild-leak",
        leak: true,
        about: "a grandchild process leaks (parent and child stay flat)",
    },
    Case {
        name: "gc-sawtooth",
        leak: false,
        about: "garbage-collector sawtooth: fills and is fully collected, flat floor",
    },
    Case {
        name: "warmup-plateau",
        leak: false,
        about: "grows for most of the run, then plateaus",
    },
    Case {
        name: "cache-cap",
        leak: false,
        about: "a cache fills in bursts up to its cap, then evicts",
    },
    Case {
        name: "mmap-churn",
        leak: false,
        about: "maps and unmaps at random, stable total",
    },
    Case {
        name: "step-once",
        leak: false,
        about: "one step up halfway, then flat",
    },
    Case {
        name: "short-children",
        leak: false,
        about: "a flat parent forking many short-lived children",
    },
];

/// The case named `name`.
pub fn case(name: &str) -> Option<Case> {
    CASES.iter().copied().find(|c| c.name == name)
}

/// splitmix64: small, seeded, good enough for noise.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f64 {
        self.unit() * 2.0 - 1.0
    }
}

/// Rounds to whole 4 KiB pages, as resident memory is.
fn pages(v: f64) -> f64 {
    (v / 4096.0).round() * 4096.0
}

/// Times and values (bytes) of case `name`, or `None` for an unknown name.
pub fn series(name: &str, seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut rng = Rng::new(seed ^ fnv(name));
    let t: Vec<f64> = (0..SECONDS).map(|i| i as f64).collect();
    let base = 200.0 * MIB;
    let jitter = |rng: &mut Rng| 64.0 * 4096.0 * rng.signed();
    let y: Vec<f64> = match name {
        "steady-leak" => t
            .iter()
            .map(|&x| base + MIB * x + jitter(&mut rng))
            .collect(),
        "slow-leak" => t
            .iter()
            .map(|&x| base + 0.4 * MIB * x + 60.0 * MIB * rng.signed())
            .collect(),
        // 4 MiB every 5 s from an unjoined thread.
        "thread-leak" => t
            .iter()
            .map(|&x| base + 4.0 * MIB * (x / 5.0).floor() + jitter(&mut rng))
            .collect(),
        // 60 s cycles: +100 MiB, then 80 MiB freed; the floor rises 20 MiB.
        "sawtooth-leak" => t
            .iter()
            .map(|&x| {
                let k = (x / 60.0).floor();
                base + 20.0 * MIB * k + 100.0 * MIB * (x - 60.0 * k) / 60.0 + jitter(&mut rng)
            })
            .collect(),
        "gchild-leak" => t
            .iter()
            .map(|&x| 8.0 * MIB + 1.5 * MIB * x + jitter(&mut rng))
            .collect(),
        // 50 s cycles: fills 150 MiB, collected back to the same floor.
        "gc-sawtooth" => t
            .iter()
            .map(|&x| {
                let k = (x / 50.0).floor();
                300.0 * MIB + 150.0 * MIB * (x - 50.0 * k) / 50.0 + jitter(&mut rng)
            })
            .collect(),
        // Grows 0.8 MiB/s for 360 s, then flat.
        "warmup-plateau" => t
            .iter()
            .map(|&x| base + 0.8 * MIB * x.min(360.0) + jitter(&mut rng))
            .collect(),
        // Bursty fill up to a 200 MiB cap (reached after about 330 s),
        // then evictions keep it there.
        "cache-cap" => {
            let mut v = 50.0 * MIB;
            t.iter()
                .map(|_| {
                    if rng.unit() < 0.3 {
                        v += 3.0 * MIB * rng.unit();
                    }
                    if v > 200.0 * MIB {
                        v = 200.0 * MIB - MIB * rng.unit();
                    }
                    v
                })
                .collect()
        }
        "mmap-churn" => t
            .iter()
            .map(|_| 100.0 * MIB + 64.0 * MIB * rng.unit())
            .collect(),
        "step-once" => t
            .iter()
            .map(|&x| if x < 300.0 { 100.0 * MIB } else { 400.0 * MIB } + jitter(&mut rng))
            .collect(),
        "short-children" => t.iter().map(|_| 6.0 * MIB + jitter(&mut rng)).collect(),
        _ => return None,
    };
    Some((t, y.into_iter().map(|v| pages(v.max(0.0))).collect()))
}

/// FNV-1a of a name, to give every case its own noise.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::super::{analyse_series, Metric, ModelChoice, SeriesInput, Settings, Verdict};
    use super::*;

    fn verdict(name: &str, model: ModelChoice, seed: u64) -> (Verdict, String) {
        let (t, y) = series(name, seed).unwrap();
        let s = Settings {
            model,
            ..Settings::default()
        };
        let input = SeriesInput {
            metric: Metric::Rss,
            values: &y,
            limit: LIMIT,
        };
        let f = analyse_series(&t, &[input], 1.0, &s).unwrap().remove(0);
        (f.verdict, format!("[{}] {}", f.model.name(), f.why))
    }

    /// Leak verdict of every case, in [`CASES`] order.
    fn flagged(model: ModelChoice, seed: u64) -> Vec<bool> {
        CASES
            .iter()
            .map(|c| verdict(c.name, model, seed).0 == Verdict::Leak)
            .collect()
    }

    const L: bool = true;
    const N: bool = false;

    #[test]
    fn each_model_on_the_corpus() {
        // steady slow thread saw gchild | gc warmup cache mmap step short
        assert_eq!(
            flagged(ModelChoice::Lbr, 1),
            [L, N, L, L, L, L, N, N, N, N, N],
            "LBR misses the noisy slow leak and flags the GC sawtooth's last ramp"
        );
        assert_eq!(
            flagged(ModelChoice::Sawtooth, 1),
            [N, L, N, L, N, N, N, N, N, N, N],
            "the sawtooth model flags only rising floors (noise swings count as cycles)"
        );
        assert_eq!(
            flagged(ModelChoice::Trend, 1),
            [L, L, L, L, L, N, N, N, N, N, N]
        );
        let labels: Vec<bool> = CASES.iter().map(|c| c.leak).collect();
        for seed in 1..=5 {
            let got = flagged(ModelChoice::All, seed);
            for (c, (g, l)) in CASES.iter().zip(got.iter().zip(&labels)) {
                if g != l {
                    eprintln!(
                        "{} seed {seed}: {}",
                        c.name,
                        verdict(c.name, ModelChoice::All, seed).1
                    );
                }
            }
            assert_eq!(got, labels, "seed {seed}");
        }
    }

    #[test]
    fn combined_names_the_model_that_decided() {
        let model = |name| {
            let (t, y) = series(name, 1).unwrap();
            let input = SeriesInput {
                metric: Metric::Rss,
                values: &y,
                limit: LIMIT,
            };
            analyse_series(&t, &[input], 1.0, &Settings::default())
                .unwrap()
                .remove(0)
        };
        let f = model("steady-leak");
        assert_eq!(f.model, super::super::Model::Lbr);
        let f = model("sawtooth-leak");
        assert_eq!(f.model, super::super::Model::Sawtooth);
        assert!(f.why.contains("floor of a sawtooth"), "{}", f.why);
        assert_eq!(f.cycles, Some(9));
        let f = model("gc-sawtooth");
        assert_eq!(f.verdict, Verdict::NoTrend);
        assert!(f.why.contains("garbage collector"), "{}", f.why);
        let (t, y) = series("slow-leak", 1).unwrap();
        let s = Settings {
            model: ModelChoice::Trend,
            ..Settings::default()
        };
        let input = SeriesInput {
            metric: Metric::Rss,
            values: &y,
            limit: LIMIT,
        };
        let f = analyse_series(&t, &[input], 1.0, &s).unwrap().remove(0);
        assert!(f.p_value.unwrap() < 1e-6);
        assert!(f.why.contains("Mann–Kendall"), "{}", f.why);
    }

    #[test]
    fn warm_up_that_lbr_flags_is_not_a_leak_combined() {
        // Grows 1 MiB/s for 520 s, then flat for 80 s: a window over both
        // still fits a line (R² ≥ 0.9), so LBR alone flags it.
        let t: Vec<f64> = (0..600).map(f64::from).collect();
        let y: Vec<f64> = t
            .iter()
            .map(|&x| 100.0 * MIB + MIB * x.min(520.0))
            .collect();
        let run = |model| {
            let s = Settings {
                model,
                ..Settings::default()
            };
            let input = SeriesInput {
                metric: Metric::Rss,
                values: &y,
                limit: LIMIT,
            };
            analyse_series(&t, &[input], 1.0, &s).unwrap().remove(0)
        };
        assert_eq!(run(ModelChoice::Lbr).verdict, Verdict::Leak);
        let f = run(ModelChoice::All);
        assert_ne!(f.verdict, Verdict::Leak, "{}", f.why);
        assert!(f.why.contains("growth has stopped"), "{}", f.why);
    }

    #[test]
    fn series_are_reproducible_and_every_case_has_one() {
        for c in CASES {
            let a = series(c.name, 7).unwrap();
            assert_eq!(a, series(c.name, 7).unwrap());
            assert_ne!(a.1, series(c.name, 8).unwrap().1, "{}", c.name);
            assert_eq!(a.0.len(), SECONDS);
        }
        assert!(series("no-such-case", 1).is_none());
        assert_eq!(case("step-once").map(|c| c.leak), Some(false));
    }
}
