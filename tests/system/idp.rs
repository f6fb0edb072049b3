//! A real OIDC provider for the identity tests: `node tests/idp/server.js` (the npm package
//! `oidc-provider`, installed by `npm ci` in tests/idp), one per test on a free loopback port,
//! so tests run in parallel without sharing state or fetch counters. Also the device-flow
//! "browser" (`complete-device.js`) and the `slow_down` stub (`stub.js`).
//!
//! Missing node or missing packages fail the test (never skip): `.ci/run` installs both.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

pub fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

fn require_node() {
    let ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "node is not installed: the identity tests need Node.js 20+ (.ci/run installs it with apt)");
    assert!(
        idp_dir().join("node_modules/oidc-provider/package.json").exists(),
        "tests/idp/node_modules is missing: run `npm ci` in tests/idp (.ci/run does)"
    );
}

/// A running provider (or stub). Killed when dropped.
pub struct Idp {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
    pub port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Idp {
    /// `server.js` with the given environment (see its header for the knobs).
    pub fn start(env: &[(&str, &str)]) -> Idp {
        Idp::spawn("server.js", env)
    }

    /// `stub.js` (scripted token endpoint answers).
    pub fn stub(env: &[(&str, &str)]) -> Idp {
        Idp::spawn("stub.js", env)
    }

    fn spawn(script: &str, env: &[(&str, &str)]) -> Idp {
        require_node();
        let mut c = Command::new("node");
        c.arg(idp_dir().join(script)).current_dir(idp_dir());
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("start node");
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // The first line says where it listens; the rest (the provider logs there too) is
        // drained, since a full pipe would stop the provider.
        let (tx, first) = std::sync::mpsc::channel();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            let _ = tx.send(line);
            collect(out, sink);
        });
        let line = first.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            let state = process_state(child.id());
            let _ = child.kill();
            panic!("{script} printed nothing within 30 s\n{}\n{state}", stderr.lock().unwrap())
        });
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("{script} did not start: {line:?}\n{}", stderr.lock().unwrap()));
        Idp {
            child,
            _stdin: stdin,
            issuer: v["issuer"].as_str().unwrap().to_string(),
            port: v["port"].as_u64().unwrap() as u16,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET (or POST `body` to) one of the provider's test endpoints; the answer must be 200.
    #[track_caller]
    fn fetch(&self, path: &str, body: Option<&str>) -> String {
        let url = self.url(path);
        let a = http_agent();
        let r = match body {
            Some(b) => a.post(&url).send(b),
            None => a.get(&url).call(),
        };
        let mut r =
            r.unwrap_or_else(|e| panic!("{url}: {e}\nprovider log:\n{}", self.stderr.lock().unwrap()));
        let text = r.body_mut().read_to_string().unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.status().as_u16(), 200, "{url}: {text}");
        text
    }

    /// A token signed by this provider's keys (or forged): see server.js `/test/mint`.
    pub fn mint(&self, spec: Value) -> String {
        let v: Value = serde_json::from_str(&self.fetch("/test/mint", Some(&spec.to_string()))).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// How often discovery and the JWK set were fetched, etc.
    pub fn stats(&self) -> Value {
        serde_json::from_str(&self.fetch("/test/stats", None)).unwrap()
    }

    /// The stub's record of poll times (seconds after the device authorization).
    pub fn polls(&self) -> Vec<f64> {
        serde_json::from_str(&self.fetch("/test/polls", None)).unwrap()
    }

    /// The public JWK set, as served.
    pub fn jwks(&self) -> String {
        self.fetch("/jwks", None)
    }

    /// Completes (or aborts) a device flow as a person in a browser would.
    #[track_caller]
    pub fn complete(&self, user_code: &str, login: &str, action: &str) {
        self.complete_env(user_code, login, action, &[]);
    }

    /// [`Idp::complete`] with extra environment (e.g. `NODE_EXTRA_CA_CERTS` for https).
    #[track_caller]
    pub fn complete_env(&self, user_code: &str, login: &str, action: &str, env: &[(&str, &str)]) {
        let o = output_within(
            Command::new("node")
                .envs(env.iter().copied())
                .arg(idp_dir().join("complete-device.js"))
                .args([&self.issuer, user_code, login, action])
                .stdin(Stdio::null()),
            Duration::from_secs(60),
        );
        assert!(
            o.status.success(),
            "completing the device flow failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("identity provider log:\n{}", self.stderr.lock().unwrap());
        }
    }
}

/// `[[issuer]]` for a provider.
pub fn issuer_toml(name: &str, issuer: &str, extra: &str) -> String {
    format!(
        "[[issuer]]\nname = \"{name}\"\nurl = \"{issuer}\"\nclient_id = \"lpexec\"\nscopes = [\"openid\", \"email\", \"groups\", \"offline_access\"]\n{extra}\n"
    )
}

/// A private cache home for `user` inside the sandbox (XDG_CACHE_HOME), so parallel tests
/// never share a token cache.
pub fn cache_home(sb: &Sandbox, user: &str) -> PathBuf {
    let d = sb.dir.join(format!("cache-{user}"));
    std::fs::create_dir_all(&d).unwrap();
    let uid = uid_of(user);
    nix::unistd::chown(&d, Some(uid.into()), None).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// A command started in the background whose stderr is collected as it arrives.
pub struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

fn collect(mut r: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

impl Running {
    pub fn start(sb: &Sandbox, user: &str, env: &[(&str, &str)], args: &[&str]) -> Running {
        let lp = sb.lpexec();
        let mut argv = vec![lp.as_str()];
        argv.extend_from_slice(args);
        let mut c = sb.command(user, env, &argv);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let (stderr, stdout) = (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
        collect(child.stderr.take().unwrap(), stderr.clone());
        collect(child.stdout.take().unwrap(), stdout.clone());
        Running { child, stderr, stdout }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the device flow's user code on stderr.
    #[track_caller]
    pub fn user_code(&self) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(code) = user_code_in(&self.stderr()) {
                return code;
            }
            assert!(Instant::now() < until, "no user code on stderr:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> Out {
        let until = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return Out {
                    status: st,
                    stdout: self.stdout.lock().unwrap().clone(),
                    stderr: self.stderr.lock().unwrap().clone(),
                };
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                panic!("timed out; stderr so far:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The code in "... enter the code ABCD-EFGH".
pub fn user_code_in(text: &str) -> Option<String> {
    let rest = text.split("enter the code ").nth(1)?;
    let code: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    (!code.is_empty() && rest.len() > code.len()).then_some(code)
}

/// `lpexec login` as `user`, completed in the "browser" as `login`. Returns its output.
#[track_caller]
pub fn login(sb: &Sandbox, idp: &Idp, user: &str, env: &[(&str, &str)], login_as: &str) -> Out {
    let r = Running::start(sb, user, env, &["login"]);
    let code = r.user_code();
    idp.complete(&code, login_as, "approve");
    r.wait(Duration::from_secs(30))
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, in `dir`:
/// `ca.pem`, `server.pem` (chain) and `server.key`. Returns (ca, chain, key) paths.
pub fn test_pki(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let d = dir.display();
    let script = format!(
        "set -e; cd '{d}'
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=lpexec-test-ca \
           -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.pem
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr
         printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out leaf.pem
         cat leaf.pem ca.pem > server.pem
         chmod 644 ca.pem server.pem"
    );
    let o = output_within(Command::new("sh").arg("-c").arg(&script), COMMAND_LIMIT);
    assert!(o.status.success(), "openssl failed (is it installed?): {}", String::from_utf8_lossy(&o.stderr));
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}
