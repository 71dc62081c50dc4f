//! HTTPS targets: a delivery over TLS to a loopback receiver whose certificate a test CA
//! signed, trusted through `extra_ca_file` or the system store (`SSL_CERT_FILE`), and each
//! certificate failure named plainly in the attempt's record.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use crate::helpers::*;

/// A certificate authority made for one test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// What a receiver's certificate says.
struct Leaf<'a> {
    names: &'a [&'a str],
    expired: bool,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    /// The CA's certificate in a PEM file under `dir`.
    fn write_pem(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join(format!("ca-{}.pem", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }

    /// A server's TLS settings: a leaf this CA signed, sent with the CA's certificate.
    fn server(&self, leaf: Leaf<'_>) -> rustls::ServerConfig {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(leaf.names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        if leaf.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![certificate.der().clone(), self.issuer.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap()
    }
}

const HOST: &str = "receiver.test";

fn valid_for_host() -> Leaf<'static> {
    Leaf { names: &[HOST, "127.0.0.1"], expired: false }
}

/// A server trusting `extra_ca_file`, whose resolver answers [`HOST`] with loopback.
async fn spawn_trusting(extra_ca_file: Option<PathBuf>) -> TestApp {
    spawn_app_with(Backend::Sqlite, |config| {
        config.extra_ca_file = extra_ca_file;
        config.resolver = StubDns::default().answer(HOST, "127.0.0.1").resolver();
    })
    .await
}

/// Registers a webhook at `url` with no retries, publishes one event, and returns the
/// delivery once it has ended.
async fn deliver_once(app: &TestApp, url: &str, status: &str) -> serde_json::Value {
    let webhook = app.create_webhook(json!({"url": url, "events": ["*"], "max_retries": 0})).await;
    app.publish("artifact.completed", json!({"id": 1})).await;
    let id = webhook["id"].as_str().unwrap();
    app.wait_for_all(id, 1, status, LONG).await.remove(0)
}

#[actix_web::test]
async fn a_delivery_over_https_to_a_certificate_of_the_extra_ca_succeeds() {
    let ca = TestCa::new("hookbus test CA");
    let receiver = TestReceiver::start_tls(ca.server(valid_for_host())).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_trusting(Some(ca.write_pem(dir.path()))).await;
    let webhook = app.create_webhook(json!({"url": receiver.url_at(HOST), "events": ["*"]})).await;
    app.publish("artifact.completed", json!({"id": 1})).await;

    let received = receiver.recv(LONG).await.expect("the receiver got the delivery over TLS");
    assert_eq!(received.json()["data"], json!({"id": 1}));
    assert_eq!(verify_standard_webhooks(webhook["secret"].as_str().unwrap(), &received), 1);
    app.wait_for_all(webhook["id"].as_str().unwrap(), 1, "succeeded", LONG).await;
}

#[actix_web::test]
async fn a_certificate_of_a_ca_nobody_trusts_is_an_unknown_issuer() {
    let ca = TestCa::new("hookbus test CA");
    let receiver = TestReceiver::start_tls(ca.server(valid_for_host())).await;
    // The same receiver, but this server was not given the CA.
    let app = spawn_trusting(None).await;
    let delivery = deliver_once(&app, &receiver.url_at(HOST), "failed").await;
    assert_eq!(delivery["error_message"], "untrusted certificate: unknown issuer", "{delivery}");
    assert_eq!(receiver.count(), 0, "no request crosses a refused handshake");
}

#[actix_web::test]
async fn an_expired_certificate_and_a_certificate_for_another_name_are_named_plainly() {
    let ca = TestCa::new("hookbus test CA");
    let expired = TestReceiver::start_tls(ca.server(Leaf { names: &[HOST], expired: true })).await;
    let other_name = TestReceiver::start_tls(ca.server(Leaf { names: &["other.test"], expired: false })).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_trusting(Some(ca.write_pem(dir.path()))).await;

    let delivery = deliver_once(&app, &expired.url_at(HOST), "failed").await;
    assert_eq!(delivery["error_message"], "certificate expired", "{delivery}");
    let delivery = deliver_once(&app, &other_name.url_at(HOST), "failed").await;
    assert_eq!(delivery["error_message"], "name mismatch", "{delivery}");
    assert_eq!(expired.count() + other_name.count(), 0);
}

/// The system store is what the server trusts without `extra_ca_file`, and `SSL_CERT_FILE`
/// replaces it (as for curl and OpenSSL): the real binary, as a process of its own.
#[actix_web::test]
async fn the_server_trusts_the_system_store_named_by_ssl_cert_file() {
    let ca = TestCa::new("company CA");
    let receiver = TestReceiver::start_tls(ca.server(valid_for_host())).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let ca_file = ca.write_pem(db.data_dir());
    let server = ServerProcess::start_with(&db.url, db.data_dir(), |command| {
        command.env("SSL_CERT_FILE", &ca_file).env_remove("SSL_CERT_DIR");
    })
    .await;
    // The process resolves with the system's resolver, so the URL is the address itself.
    let webhook = server.post("/api/v1/webhooks", json!({"url": receiver.url(), "events": ["*"]})).await.unwrap();
    assert_eq!(webhook.status, 201, "{}", webhook.body);
    let published = server.post("/api/v1/events", json!({"event": "source.ready", "data": {}})).await.unwrap();
    assert_eq!(published.status, 202, "{}", published.body);
    let received = receiver.recv(LONG).await.expect("delivered over TLS to the CA from SSL_CERT_FILE");
    assert_eq!(verify_standard_webhooks(webhook.body["secret"].as_str().unwrap(), &received), 1);
}

#[test]
fn a_server_given_an_unreadable_extra_ca_file_does_not_start_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = hookbus_command()
        .args(["serve", "--dev", "--bind", "127.0.0.1:0", "--extra-ca-file", "/nonexistent/company-ca.pem"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("extra_ca_file /nonexistent/company-ca.pem: cannot read it"), "{stderr}");
}
