//! `upstreams.<name>.ca_file`: an extra trust root, checked to be one a TLS client can use.

use std::path::PathBuf;

use super::check::{show_path, Check};
use super::Secrets;
use crate::config::read::{read_capped, MAX_FILE_BYTES};

/// `ca_file`: a regular file under [`MAX_FILE_BYTES`] holding PEM certificates only, at least
/// one, each one rustls takes as a trust root. Anything else (a text file, an empty one, a
/// private key) used to pass here and then fail every TLS handshake with no word of ca_file.
pub(super) fn ca_file(c: &mut Check, key: &str, written: &str) -> PathBuf {
    let path = c.path(written);
    let shown = show_path(written, &path);
    let fix = "Point it at a PEM bundle of CA certificates (-----BEGIN CERTIFICATE-----), or drop ca_file to use the system roots";
    if written.trim().is_empty() {
        c.problem(key, format!("is empty. {fix}"));
        return path;
    }
    if c.secrets == Secrets::Skip {
        return path;
    }
    let bytes = match read_capped(&path, MAX_FILE_BYTES) {
        Ok(b) => b,
        Err(e) => {
            c.problem(key, format!("{shown} cannot be read ({e}). {fix}"));
            return path;
        }
    };
    if let Err(why) = pem_certificates(&bytes) {
        c.problem(key, format!("{shown} {why} (contents not shown). {fix}"));
    }
    path
}

/// How many certificates a PEM bundle holds, or why it is not one a TLS client can trust.
fn pem_certificates(bytes: &[u8]) -> Result<usize, String> {
    use rustls_pki_types::pem::{self, SectionKind};
    let mut rest = bytes;
    let mut certs = 0;
    loop {
        match pem::from_buf(&mut rest) {
            Ok(Some((SectionKind::Certificate, der))) => {
                let mut store = pingora::tls::RootCertStore::empty();
                if store.add(pingora::tls::CertificateDer::from(der)).is_err() {
                    return Err(format!(
                        "holds a certificate (number {}) that is not a valid X.509 CA certificate",
                        certs + 1
                    ));
                }
                certs += 1;
            }
            Ok(Some((
                SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey,
                _,
            ))) => return Err("holds a private key, not a CA certificate".into()),
            Ok(Some(_)) => {
                return Err(
                    "holds PEM sections that are not certificates (a CRL, CSR or public key)"
                        .into(),
                )
            }
            Ok(None) if certs == 0 => {
                return Err(if bytes.iter().all(u8::is_ascii_whitespace) {
                    "is empty".into()
                } else {
                    "holds no PEM certificate".into()
                })
            }
            Ok(None) => return Ok(certs),
            Err(_) => return Err("is not valid PEM".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_count_their_certificates() {
        let ca = crate::config::tests::TEST_CA_PEM;
        assert_eq!(pem_certificates(ca.as_bytes()), Ok(1));
        assert_eq!(pem_certificates(format!("{ca}\n{ca}").as_bytes()), Ok(2));
        assert_eq!(pem_certificates(b" \n"), Err("is empty".into()));
    }
}
