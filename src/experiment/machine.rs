//! The CPU a run was measured on, written beside its wall time. The flex backend's arithmetic
//! differs between CPU kinds (AMD and Intel, and generations with and without AVX-512, round
//! some reductions differently), so one seed's run diverges across machines: a study that
//! pools runs from several machines must say which ran where, and its table does
//! (docs/experiments.md).

/// The CPU as Linux reports it in `/proc/cpuinfo`: its model name with its family and model
/// numbers ("AMD EPYC (family 25, model 17)": a virtual machine's model name alone may not tell
/// generations apart), or the architecture where there is no such file.
pub fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| describe(&text))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The first processor's `model name`, with its `cpu family` and `model` where given.
fn describe(cpuinfo: &str) -> Option<String> {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            let value = value.trim();
            (key.trim() == name && !value.is_empty()).then(|| value.to_string())
        })
    };
    let name = field("model name")?;
    Some(match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_the_first_processors_name_family_and_model() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n\
                    model name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: Other\n";
        assert_eq!(
            describe(text).as_deref(),
            Some("AMD EPYC (family 25, model 17)")
        );
        assert_eq!(
            describe("model name\t: Intel Xeon\n").as_deref(),
            Some("Intel Xeon")
        );
        assert_eq!(describe("processor\t: 0\nmodel name\t:\n"), None);
        assert!(!cpu().is_empty());
    }
}
