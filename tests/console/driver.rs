//! chromedriver for one `Browser`: started on a free port, killed on drop,
//! and the session it holds ended first even when the test panicked.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

/// Ends the session when a test did not (it panicked first): chromedriver
/// killed with its session open leaves Chromium running and its profile in
/// /tmp. A blocking DELETE, because `Drop` cannot await.
pub struct SessionGuard {
    /// chromedriver's address and the session's path, until it is ended.
    open: Option<(String, String)>,
}

impl SessionGuard {
    pub fn new(webdriver_url: &str, id: &str) -> Self {
        let url = url::Url::parse(webdriver_url).expect("WebDriver URL");
        let address = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port_or_known_default().unwrap_or(80)
        );
        let path = url
            .join(&format!("session/{id}"))
            .expect("session URL")
            .path()
            .to_owned();
        Self {
            open: Some((address, path)),
        }
    }

    pub fn ended(&mut self) {
        self.open = None;
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let Some((address, path)) = self.open.take() else {
            return;
        };
        let deleted = (|| -> std::io::Result<()> {
            let mut stream = TcpStream::connect(&address)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                stream,
                "DELETE {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            // The answer comes once Chromium has quit; chromedriver keeps
            // the connection open after it, so its first bytes are enough.
            stream.read(&mut [0; 64]).map(drop)
        })();
        if let Err(e) = deleted {
            eprintln!("could not end WebDriver session {path} at {address}: {e}");
        }
    }
}

/// A chromedriver of this test's own.
pub struct Driver {
    /// Killed when dropped (kill_on_drop).
    _child: Child,
    pub url: String,
}

impl Driver {
    pub async fn start() -> Self {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        // The port is free when picked, but another process may take it
        // before chromedriver binds it: then chromedriver exits, and a new
        // port is tried.
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&program)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("{program}: {e} (scripts/console-check.sh installs chromium-driver)")
                });
            let url = format!("http://127.0.0.1:{port}");
            if answers(&url, &mut child).await {
                return Self { _child: child, url };
            }
        }
        panic!("{program} did not start (3 ports tried)");
    }
}

/// Whether chromedriver at `url` answers /status before it exits or ten
/// seconds pass.
async fn answers(url: &str, child: &mut Child) -> bool {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let running = matches!(child.try_wait(), Ok(None));
        if !running {
            return false;
        }
        if let Ok(response) = client.get(format!("{url}/status")).send().await {
            // Still ours: a chromedriver that lost the port exits at once.
            return response.status().is_success() && matches!(child.try_wait(), Ok(None));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}
