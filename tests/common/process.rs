//! Child processes of the tests and benchmarks, one way for all: the real binary (or an emulator)
//! started with the environment asked for, its stdout and stderr read line by line (or sent to a
//! file, or dropped), readiness from its "listening" log line, stopped with SIGTERM and waited
//! for (SIGKILL only if it does not exit in time).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test, as cargo built it for this test or bench.
pub const BIN: &str = env!("CARGO_BIN_EXE_pipeline-run-metrics");

/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where a child's stdout or stderr goes.
#[derive(Debug, Clone)]
pub enum Capture {
    /// Read line by line by the test ([`Running::stdout`], [`Running::stderr`]).
    Lines,
    /// Dropped.
    Null,
    /// Written to this file (created or truncated).
    File(PathBuf),
}

impl Capture {
    fn stdio(&self) -> Stdio {
        match self {
            Capture::Lines => Stdio::piped(),
            Capture::Null => Stdio::null(),
            Capture::File(p) => std::fs::File::create(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).into(),
        }
    }
}

/// A child process to start.
pub struct Process {
    cmd: Command,
    program: String,
    stdout: Capture,
    stderr: Capture,
    /// stdout and stderr both into this file
    log: Option<PathBuf>,
    group: bool,
}

impl Process {
    /// `program`, with this process's environment, stdin closed, stdout and stderr read as lines.
    pub fn new(program: impl AsRef<OsStr>) -> Process {
        let program_name = program.as_ref().to_string_lossy().into_owned();
        let mut cmd = Command::new(program);
        cmd.stdin(Stdio::null());
        Process { cmd, program: program_name, stdout: Capture::Lines, stderr: Capture::Lines, log: None, group: false }
    }

    /// The binary under test with a clean environment (only `PATH`): every setting not given
    /// with [`Process::env`] keeps its default.
    pub fn binary() -> Process {
        Process::new(BIN).clean_env(&["PATH"])
    }

    /// Clears the environment, keeping only the variables named (those that are set).
    pub fn clean_env(mut self, keep: &[&str]) -> Process {
        self.cmd.env_clear();
        for k in keep {
            if let Some(v) = std::env::var_os(k) {
                self.cmd.env(k, v);
            }
        }
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Process {
        self.cmd.env(key, value);
        self
    }

    /// Sets environment variables.
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Process {
        self.cmd.envs(vars);
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Process {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Process {
        self.cmd.args(args);
        self
    }

    /// Where stdout goes (default: lines).
    pub fn stdout(mut self, to: Capture) -> Process {
        self.stdout = to;
        self
    }

    /// Where stderr goes (default: lines).
    pub fn stderr(mut self, to: Capture) -> Process {
        self.stderr = to;
        self
    }

    /// Both stdout and stderr into one file (an emulator's log).
    pub fn log_file(mut self, path: &Path) -> Process {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Starts the child as the leader of its own process group and signals the whole group
    /// (for programs that fork: gcloud starts java, bqemulator is a Python launcher).
    pub fn own_group(mut self) -> Process {
        self.group = true;
        self
    }

    /// Starts the child; [`Running::started`] is taken just before exec.
    pub fn spawn(mut self) -> Running {
        match &self.log {
            Some(path) => {
                let out = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                self.cmd.stdout(out.try_clone().unwrap()).stderr(out);
            }
            None => {
                self.cmd.stdout(self.stdout.stdio()).stderr(self.stderr.stdio());
            }
        }
        if self.group {
            use std::os::unix::process::CommandExt;
            self.cmd.process_group(0);
        }
        let started = Instant::now();
        let mut child = self.cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        let stdout = Lines::of(child.stdout.take());
        let stderr = Lines::of(child.stderr.take());
        Running { child, stdout, stderr, group: self.group, started }
    }

    /// Runs the child to its end and returns its exit status and its whole stdout and stderr.
    pub fn output(mut self) -> Output {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd.output().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program))
    }
}

/// The lines of a child's stdout or stderr, read by a thread as they come. Lines looked at
/// ([`Lines::pull`], [`Running::wait_listening`]) stay to be read.
pub struct Lines {
    rx: Option<mpsc::Receiver<String>>,
    peeked: VecDeque<String>,
}

impl Lines {
    fn of(pipe: Option<impl std::io::Read + Send + 'static>) -> Lines {
        let rx = pipe.map(|r| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        Lines { rx, peeked: VecDeque::new() }
    }

    /// The next line, waiting up to `limit`; `None` after `limit` or at the end of the stream.
    pub fn next(&mut self, limit: Duration) -> Option<String> {
        self.peeked.pop_front().or_else(|| self.rx.as_ref()?.recv_timeout(limit).ok())
    }

    /// The next line if one is there already.
    pub fn try_next(&mut self) -> Option<String> {
        self.peeked.pop_front().or_else(|| self.rx.as_ref()?.try_recv().ok())
    }

    /// Up to `n` lines, waiting up to 10 s for each; fewer if one does not come.
    pub fn collect(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next(Duration::from_secs(10)) {
                Some(l) => out.push(l),
                None => break,
            }
        }
        out
    }

    /// Every line until the stream ends (the child has exited), waiting up to `limit` in all.
    pub fn rest(&mut self, limit: Duration) -> Vec<String> {
        let t0 = Instant::now();
        let mut out: Vec<String> = self.peeked.drain(..).collect();
        let Some(rx) = &self.rx else { return out };
        loop {
            match rx.recv_timeout(limit.saturating_sub(t0.elapsed())) {
                Ok(l) => out.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => return out,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the stream did not end within {limit:?}: {out:?}"),
            }
        }
    }

    /// Moves the lines that have come into the lines looked at, without waiting; `false` once
    /// the stream has ended (or was not captured).
    pub fn pull(&mut self) -> bool {
        let Some(rx) = &self.rx else { return false };
        loop {
            match rx.try_recv() {
                Ok(l) => self.peeked.push_back(l),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// The lines read so far and not taken yet.
    pub fn peeked(&self) -> &VecDeque<String> {
        &self.peeked
    }
}

/// A started child process, stopped (SIGTERM, then SIGKILL if needed) when dropped.
pub struct Running {
    /// The child itself.
    pub child: Child,
    /// Its stdout lines (empty unless captured as [`Capture::Lines`]).
    pub stdout: Lines,
    /// Its stderr lines (empty unless captured as [`Capture::Lines`]).
    pub stderr: Lines,
    group: bool,
    /// When it was started (just before exec).
    pub started: Instant,
}

impl Running {
    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child, or to its whole group after [`Process::own_group`]; whether
    /// kill(2) succeeded.
    pub fn signal(&self, signal: i32) -> bool {
        let pid = self.child.id() as i32;
        assert!(pid > 1, "never signal {pid}");
        let target = if self.group { -pid } else { pid };
        // SAFETY: kill(2) on the child's own pid (positive), or on the process group it leads
        // (its pid negated, > 1 checked above).
        unsafe { libc::kill(target, signal) == 0 }
    }

    /// Sends SIGTERM, which must be delivered.
    pub fn sigterm(&self) {
        assert!(self.signal(libc::SIGTERM), "SIGTERM to {}", self.child.id());
    }

    /// Waits for the child's structured "listening" log line on stderr (at the default log
    /// level) and returns it; fails with the lines seen if it does not come within `limit`
    /// (startup error, exit). The lines stay to be read. Async, so that in-process fakes the
    /// child calls while starting keep answering.
    pub async fn wait_listening(&mut self, limit: Duration) -> serde_json::Value {
        let is_listening =
            |l: &String| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["message"] == "listening");
        let t0 = Instant::now();
        loop {
            let open = self.stderr.pull();
            if let Some(l) = self.stderr.peeked().iter().find(|l| is_listening(l)) {
                return serde_json::from_str(l).unwrap();
            }
            if !open || t0.elapsed() >= limit {
                panic!(
                    "no \"listening\" line within {limit:?} (exit: {:?}); stderr: {:?}",
                    self.child.try_wait().ok().flatten(),
                    self.stderr.peeked()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to `limit` for the child to exit; its status, or `None` if it still runs.
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if t0.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the child to exit, which it must do successfully within `limit`.
    pub fn assert_clean_exit_within(&mut self, limit: Duration) {
        let status = self.exit_within(limit);
        let status = status.unwrap_or_else(|| panic!("still running {limit:?} after SIGTERM"));
        assert!(status.success(), "exit status {status}");
    }

    /// Stops the child: SIGTERM, up to 10 s to exit, then SIGKILL; waits for it in any case.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.exit_within(STOP_GRACE).is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
