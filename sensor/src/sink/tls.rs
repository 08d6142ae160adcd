//! The TLS client setup shared by `syslog+tls://` and `https://`: rustls with ring,
//! trusting the Mozilla root set built in (webpki-roots), or only the CAs of
//! `--tls-ca` (a private PKI); `--tls-cert`/`--tls-key` present a client certificate
//! to collectors that ask for one.
//!
//! Built only with the `tls` feature (on by default): rustls's crypto, ring, compiles
//! C. Without it, TLS destinations are refused at start-up (`destination.rs`).

use super::syslog::{closed, Counting, Secure, Stream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

pub fn client_config(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca {
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path, "--tls-ca")? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "--tls-ca {}: a certificate cannot be used: {e}",
                        path.display()
                    )
                })?;
            }
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let config = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "--tls-cert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "--tls-key {}: no private key read ({e}); give a PEM file with a PKCS#8, PKCS#1 or SEC1 key",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("--tls-cert and --tls-key do not go together: {e}"))?
        }
        _ => return Err("--tls-cert and --tls-key go together: give both, or neither".into()),
    };
    Ok(Arc::new(config))
}

/// TLS over the connections of syslog+tls://`address` (`HOST:PORT`): the collector's
/// certificate is checked against `config`'s CAs and HOST, in a handshake done at once.
pub fn syslog_session(config: Arc<ClientConfig>, address: &str) -> Result<Secure, String> {
    let host = host_of(address);
    let server = ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host} cannot be checked against a certificate: {e}"))?;
    Ok(Box::new(move |socket| {
        let tls =
            ClientConnection::new(config.clone(), server.clone()).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(tls, socket);
        // The handshake now, so a certificate problem is the error said.
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(handshake_error)?;
        }
        Ok(Box::new(stream))
    }))
}

impl Stream for StreamOwned<ClientConnection, Counting> {
    fn written(&self) -> u64 {
        self.sock.written
    }
    fn drain(&mut self) -> io::Result<()> {
        drain(self)
    }
    fn socket(&self) -> &TcpStream {
        &self.sock.stream
    }
    fn end(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

/// Reads whatever the collector sent without waiting: session tickets and alerts are processed; a close_notify or
/// a closed socket is an error.
fn drain(stream: &mut StreamOwned<ClientConnection, Counting>) -> io::Result<()> {
    let socket = &stream.sock.stream;
    socket.set_nonblocking(true)?;
    let result = loop {
        match stream.conn.read_tls(&mut stream.sock) {
            Ok(0) => break Err(closed()),
            Ok(_) => {
                let state = stream
                    .conn
                    .process_new_packets()
                    .map_err(io::Error::other)?;
                let mut scratch = vec![0u8; state.plaintext_bytes_to_read()];
                let _ = stream.conn.reader().read(&mut scratch);
                if state.peer_has_closed() {
                    break Err(closed());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    stream.sock.stream.set_nonblocking(false)?;
    result
}

/// The host of `HOST:PORT`, an IPv6 address without its brackets.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A failed handshake's error, with what to do when the collector's certificate was
/// refused.
fn handshake_error(error: io::Error) -> io::Error {
    use rustls::CertificateError::*;
    let refused = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    let hint = match refused {
        Some(rustls::Error::InvalidCertificate(why)) => match why {
            UnknownIssuer | BadSignature => "the collector's certificate is not signed by a CA spawnwatch trusts: give its CA with --tls-ca FILE",
            NotValidForName | NotValidForNameContext { .. } => "the collector's certificate names another host: give the destination as one of the names it has",
            Expired | ExpiredContext { .. } | NotValidYet | NotValidYetContext { .. } => "the collector's certificate is not valid now: renew it, or check this host's clock",
            _ => return error,
        },
        _ => return error,
    };
    io::Error::new(error.kind(), format!("{error}; {hint}"))
}

/// Every certificate in a PEM file; an error naming `option` when there is none.
fn certificates(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |e: &dyn std::fmt::Display| {
        format!(
            "{option} {}: {e}; give a PEM file of certificates (-----BEGIN CERTIFICATE-----)",
            path.display()
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no certificate in it"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_an_error_that_names_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = client_config(Some(&path), None, None).unwrap_err();
        assert!(error.starts_with("--tls-ca "), "{error}");
        assert!(error.contains("no certificate in it"), "{error}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let error = client_config(None, Some(dir.path()), None).unwrap_err();
        assert!(error.contains("give both, or neither"), "{error}");
    }

    #[test]
    fn a_generated_ca_and_client_certificate_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (ca_path, key_path) = (dir.path().join("ca.pem"), dir.path().join("key.pem"));
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        std::fs::write(&key_path, ca.key_pair.serialize_pem()).unwrap();
        client_config(Some(&ca_path), Some(&ca_path), Some(&key_path)).unwrap();
    }
}
