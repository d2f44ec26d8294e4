//! Real servers that a test starts and stops itself, each in its own process group: Redis
//! (`redis-server`, Debian's package) and the Firestore emulator that gcloud ships
//! (`scripts/install-test-services.sh` installs both). Dropping the handle stops the server.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process group, stopped on drop (gcloud forks java; a test may panic).
pub struct Group(pub Child);

impl Group {
    /// Signals the child's process group (its pid is the group id: `process_group(0)`).
    pub fn signal(&self, sig: i32) {
        let pgid = self.0.id() as i32;
        assert!(pgid > 1, "never signal group {pgid}");
        // SAFETY: kill(2) with a negative pid signals exactly that process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }

    /// SIGTERM, then SIGKILL after 10 s; waits for the exit.
    pub fn stop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        self.signal(libc::SIGTERM);
        let t0 = Instant::now();
        while self.0.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.0.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `program` in a new process group, stdout and stderr into `log`.
pub fn spawn_group(program: &str, args: &[&str], log: &Path) -> Group {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e} (scripts/install-test-services.sh installs it)"));
    Group(child)
}

fn scratch(what: &str, port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{what}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_for(what: &str, log: &Path, limit: Duration, mut ready: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ready() {
        assert!(
            t0.elapsed() < limit,
            "{what} not ready after {limit:?}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status of a plain `GET path` to `hostport`, or `None`.
pub fn http_get_status(hostport: &str, path: &str, timeout: Duration) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(hostport).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A `redis-server` on 127.0.0.1, without persistence.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    group: Option<Group>,
    starts: u32,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        let mut s = RedisServer { port, dir: scratch("redis", port), group: None, starts: 0 };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (its data is gone).
    pub fn stop(&mut self) {
        if let Some(mut g) = self.group.take() {
            g.stop();
        }
    }

    /// Starts it (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.starts += 1;
        let log = self.dir.join(format!("redis-{}.log", self.starts));
        let port = self.port.to_string();
        let dir = self.dir.to_str().unwrap().to_string();
        let args = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
            "--logfile",
            "",
        ];
        let t0 = Instant::now();
        self.group = Some(spawn_group("redis-server", &args, &log));
        wait_for("redis-server", &log, Duration::from_secs(20), || {
            std::fs::read_to_string(&log).unwrap_or_default().contains("Ready to accept connections")
        });
        eprintln!("redis-server on {} in {:?}", self.port, t0.elapsed());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Firestore emulator (`gcloud emulators firestore start`) on 127.0.0.1; in memory.
pub struct FirestoreEmulator {
    pub port: u16,
    dir: PathBuf,
    group: Option<Group>,
    starts: u32,
}

impl FirestoreEmulator {
    pub fn start() -> FirestoreEmulator {
        let port = free_port();
        let mut s = FirestoreEmulator { port, dir: scratch("firestore", port), group: None, starts: 0 };
        s.restart();
        s
    }

    /// `FIRESTORE_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut g) = self.group.take() {
            g.stop();
        }
    }

    /// Starts it (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.starts += 1;
        let log = self.dir.join(format!("firestore-{}.log", self.starts));
        let host_port = format!("--host-port=127.0.0.1:{}", self.port);
        let t0 = Instant::now();
        self.group = Some(spawn_group("gcloud", &["emulators", "firestore", "start", &host_port, "--quiet"], &log));
        let hostport = self.host();
        wait_for("the Firestore emulator", &log, Duration::from_secs(90), || {
            std::fs::read_to_string(&log).unwrap_or_default().contains("Dev App Server is now running")
                && std::net::TcpStream::connect(&hostport).is_ok()
        });
        // the first requests of a fresh JVM are slow: one is made here, so that the tests' own
        // request timeouts measure the emulator, not its warm-up
        let path = "/v1/projects/warm-up/databases/(default)/documents/warm-up/nothing";
        assert!(http_get_status(&hostport, path, Duration::from_secs(60)).is_some(), "the Firestore emulator answers");
        eprintln!("Firestore emulator on {} in {:?}", self.port, t0.elapsed());
    }
}

impl Drop for FirestoreEmulator {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
