//! The cgroup a live process runs in, for the `cgroup` label: on cgroup v2
//! the path of the `0::` line of `/proc/PID/cgroup` (`/system.slice/x.service`,
//! a container's scope), which names a service across its restarts.

/// The cgroup v2 path of `pid`, "" when it is gone, or on cgroup v1 only.
pub fn of_pid(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map(|s| parse(&s))
        .unwrap_or_default()
}

fn parse(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unified_hierarchy_line_names_the_cgroup() {
        assert_eq!(
            parse("1:name=systemd:/x\n0::/system.slice/nginx.service\n"),
            "/system.slice/nginx.service"
        );
        assert_eq!(parse("3:memory:/a\n"), "");
        assert!(
            of_pid(std::process::id()).starts_with('/') || of_pid(std::process::id()).is_empty()
        );
    }
}
