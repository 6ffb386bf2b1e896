//! A study's child process (`mgrpo warmup` or `mgrpo train`), tied to the study that started
//! it. A run directory holds sled's lock while its process lives, so a child outliving its
//! study would make the study's rerun fail on that lock while the orphan trains on unseen.
//! Two ties close that:
//! - [`Tied`] kills and reaps its child when dropped before the child exited: when one run
//!   fails and the study stops with an error, the runs beside it stop too (each resumes on the
//!   rerun: a run is crash-safe, docs/experiments.md);
//! - on Linux the child asks the kernel for `SIGTERM` when the study's process dies
//!   (`PR_SET_PDEATHSIG`), so a study killed from outside (`kill`, a closed session, the OOM
//!   killer), which runs no destructor, takes its children with it.
use std::io;
use std::process::{Child, Command, ExitStatus};

/// A child process killed and reaped if it is still running when this is dropped.
#[derive(Debug)]
pub struct Tied(Child);

impl Tied {
    /// Starts `command` tied to this process.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        die_with_parent(command);
        command.spawn().map(Self)
    }

    /// The child's exit status if it has exited (`None`: still running).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.0.try_wait()
    }
}

impl Drop for Tied {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            tracing::info!(pid = self.0.id(), "stopping a run process the study leaves");
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Has the child receive `SIGTERM` when this process dies (Linux; a no-op elsewhere).
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only prctl and
    // getppid, both async-signal-safe; it allocates nothing (the error is a raw OS code).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody signals us.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::children::parent_of;
    use std::path::Path;
    use std::time::{Duration, Instant};

    #[test]
    fn a_dropped_tie_stops_its_running_child() {
        if !Path::new("/proc/self/stat").exists() {
            return; // no procfs to look at the child with
        }
        let tied = Tied::spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = tied.0.id();
        assert!(parent_of(pid).is_some(), "sleep {pid} started");
        let start = Instant::now();
        drop(tied);
        assert!(parent_of(pid).is_none(), "sleep {pid} outlived its tie");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
