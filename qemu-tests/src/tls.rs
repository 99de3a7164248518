//! A test CA for the HTTPS mirror of the update tests: a CA certificate (what a node's
//! `ca_file` names) and a server certificate it signed for 10.0.2.2, the host as a guest on
//! QEMU's user network sees it. Made with the openssl command line, as an operator making a
//! private CA would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> std::io::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| std::io::Error::new(e.kind(), format!("run openssl ({e}); install it: apt-get install -y openssl")))?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}

impl TestCa {
    /// A new CA and server certificate in `dir` (valid two days).
    pub fn make(dir: &Path) -> std::io::Result<TestCa> {
        std::fs::create_dir_all(dir)?;
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509", "-new"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Cairn test mirror CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
        openssl(dir, &ca)?;
        let mut csr = vec!["req", "-new"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=10.0.2.2"]);
        openssl(dir, &csr)?;
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:10.0.2.2,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")?;
        openssl(dir, &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"])?;
        Ok(TestCa { dir: dir.to_owned() })
    }

    /// The CA certificate, PEM: what the node's `ca_file` holds.
    pub fn ca_pem(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.dir.join("ca.pem"))
    }

    /// rustls's server configuration with the server certificate and its CA's.
    pub fn server_config(&self) -> std::io::Result<Arc<rustls::ServerConfig>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |e: rustls::pki_types::pem::Error| std::io::Error::other(e.to_string());
        let mut chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(self.dir.join("server.pem")).map_err(bad)?.collect::<Result<_, _>>().map_err(bad)?;
        chain.extend(CertificateDer::pem_file_iter(self.dir.join("ca.pem")).map_err(bad)?.collect::<Result<Vec<_>, _>>().map_err(bad)?);
        let key = PrivateKeyDer::from_pem_file(self.dir.join("server.key")).map_err(bad)?;
        // ring, as the node's ureq uses; deprecated only for its lack of post-quantum key
        // exchange, which a test mirror does not need.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(std::io::Error::other)?;
        Ok(Arc::new(config))
    }
}
