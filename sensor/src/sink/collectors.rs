//! Real servers on loopback for the tests of the network outputs: a syslog collector
//! (TCP or TLS, octet-counted frames) that can be killed and started again on the same
//! port, an HTTP receiver whose replies the test scripts, and certificates.

use crossbeam_channel::{unbounded, Receiver, Sender};
#[cfg(feature = "tls")]
pub(crate) use pki::Pki;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// How a collector reads a connection: TLS over it ([`Pki::accept`]), or (none) as
/// it is.
pub(crate) type Accept = Arc<dyn Fn(TcpStream) -> Box<dyn BufRead> + Send + Sync>;

#[cfg(feature = "tls")]
mod pki {
    use super::Accept;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::BufReader;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// A CA, and a server certificate for 127.0.0.1 it signed.
    pub(crate) struct Pki {
        pub ca_pem: String,
        server_cert: CertificateDer<'static>,
        server_key: Vec<u8>,
    }

    impl Pki {
        pub(crate) fn new() -> Pki {
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            // Each CA a name of its own, as two real ones have.
            static MADE: AtomicU32 = AtomicU32::new(0);
            let n = MADE.fetch_add(1, Ordering::Relaxed);
            ca.distinguished_name
                .push(rcgen::DnType::CommonName, format!("spawnwatch test CA {n}"));
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca = ca.self_signed(&ca_key).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
            Pki {
                ca_pem: ca.pem(),
                server_cert: server.der().clone(),
                server_key: key.serialize_der(),
            }
        }

        /// The CA's certificate as a PEM file in `dir`, for `--tls-ca`.
        pub(crate) fn ca_file(&self, dir: &Path) -> PathBuf {
            let path = dir.join("ca.pem");
            std::fs::write(&path, &self.ca_pem).unwrap();
            path
        }

        fn server_config(&self) -> Arc<rustls::ServerConfig> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![self.server_cert.clone()],
                    PrivateKeyDer::Pkcs8(self.server_key.clone().into()),
                )
                .unwrap();
            Arc::new(config)
        }

        /// A TLS server with this certificate on each connection.
        pub(crate) fn accept(&self) -> Accept {
            let config = self.server_config();
            Arc::new(move |stream| {
                let connection = rustls::ServerConnection::new(config.clone()).unwrap();
                Box::new(BufReader::new(rustls::StreamOwned::new(connection, stream)))
            })
        }
    }
}

/// What a collector saw.
#[derive(Debug)]
pub(crate) enum Seen {
    /// A whole syslog message.
    Message(String),
    /// A connection that ended in an error (a TLS handshake the client gave up on).
    Refused,
}

/// A syslog collector on 127.0.0.1: every message it reads, in order, on `seen`.
pub(crate) struct Collector {
    pub address: SocketAddr,
    pub seen: Receiver<Seen>,
    tell: Sender<Seen>,
    tls: Option<Accept>,
    running: Option<Running>,
}

struct Running {
    listener: TcpListener,
    /// The connections open, to be cut when the collector is killed.
    connections: Arc<Mutex<Vec<TcpStream>>>,
    thread: JoinHandle<()>,
}

impl Collector {
    /// A collector on a port of its own, not started: nothing listens there yet.
    pub(crate) fn down(tls: Option<Accept>) -> Collector {
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (tell, seen) = unbounded();
        Collector {
            address,
            seen,
            tell,
            tls,
            running: None,
        }
    }

    pub(crate) fn up(tls: Option<Accept>) -> Collector {
        let mut collector = Collector::down(tls);
        collector.start();
        collector
    }

    /// Listens (again) on its port.
    pub(crate) fn start(&mut self) {
        assert!(self.running.is_none());
        let listener = TcpListener::bind(self.address).unwrap();
        let accepting = listener.try_clone().unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (tell, tls, open) = (self.tell.clone(), self.tls.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            for stream in accepting.incoming() {
                let Ok(stream) = stream else { return };
                open.lock().unwrap().push(stream.try_clone().unwrap());
                let (tell, tls) = (tell.clone(), tls.clone());
                std::thread::spawn(move || read_messages(stream, tls, &tell));
            }
        });
        self.running = Some(Running {
            listener,
            connections,
            thread,
        });
    }

    /// As a `kill -9` of the collector: the port closes and every connection is cut,
    /// whatever the kernel had received for it and the collector had not read.
    pub(crate) fn kill(&mut self) {
        let running = self.running.take().expect("running");
        // Wakes the accepting thread, which then ends on the error of the next accept.
        let _ = running.listener.set_nonblocking(true);
        let _ = TcpStream::connect(self.address);
        running.thread.join().unwrap();
        drop(running.listener);
        for connection in running.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }

    /// The next `n` messages, waiting up to a minute for each; connections refused
    /// meanwhile are passed over.
    pub(crate) fn messages(&self, n: usize) -> Vec<String> {
        let mut messages = Vec::new();
        while messages.len() < n {
            match self.seen.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(Seen::Message(m)) => messages.push(m),
                Ok(Seen::Refused) => {}
                Err(_) => panic!("{} messages of {n} came", messages.len()),
            }
        }
        messages
    }
}

fn read_messages(stream: TcpStream, tls: Option<Accept>, tell: &Sender<Seen>) {
    let input: Box<dyn BufRead> = match tls {
        None => Box::new(BufReader::new(stream)),
        Some(accept) => accept(stream),
    };
    if read_frames(input, tell).is_err() {
        let _ = tell.send(Seen::Refused);
    }
}

/// RFC 6587 octet counting: `LENGTH SP MESSAGE`, until the connection ends.
fn read_frames(mut input: impl BufRead, tell: &Sender<Seen>) -> io::Result<()> {
    loop {
        let mut length = Vec::new();
        if input.read_until(b' ', &mut length)? == 0 {
            return Ok(());
        }
        let length: usize = std::str::from_utf8(&length[..length.len() - 1])
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no frame length: {length:?}")))?;
        let mut message = vec![0; length];
        input.read_exact(&mut message)?;
        let message = String::from_utf8(message).map_err(io::Error::other)?;
        let _ = tell.send(Seen::Message(message));
    }
}

/// An HTTP request as the receiver read it.
#[derive(Debug)]
pub(crate) struct Request {
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that hands each request to the test and answers
/// with the status (and body) the test gives back for it.
pub(crate) struct HttpReceiver {
    pub url: String,
    pub requests: Receiver<(Request, Sender<(u16, String)>)>,
}

impl HttpReceiver {
    pub(crate) fn start(path: &str) -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let (tell, requests) = unbounded();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let tell = tell.clone();
                std::thread::spawn(move || serve(stream, &tell));
            }
        });
        HttpReceiver { url, requests }
    }

    /// The next request, waiting up to a minute, and where its reply goes.
    pub(crate) fn next(&self) -> (Request, Sender<(u16, String)>) {
        self.requests
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a request within a minute")
    }
}

/// Requests on one kept-alive connection, one after the other.
fn serve(stream: TcpStream, tell: &Sender<(Request, Sender<(u16, String)>)>) {
    let mut out = stream.try_clone().unwrap();
    let mut input = BufReader::new(stream);
    while let Some(request) = read_request(&mut input) {
        let (reply, replied) = crossbeam_channel::bounded(1);
        if tell.send((request, reply)).is_err() {
            return;
        }
        let Ok((status, body)) = replied.recv() else {
            return;
        };
        let answer = format!(
            "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_request(input: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    input.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        input.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    input.read_exact(&mut body).ok()?;
    Some(Request {
        path,
        headers,
        body: String::from_utf8(body).ok()?,
    })
}
