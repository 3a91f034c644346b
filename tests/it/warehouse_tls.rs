//! PostgreSQL over TLS with a private CA: a second PostgreSQL cluster, started by the test on a
//! random port with a certificate for `localhost` signed by a CA made with the `openssl` CLI,
//! refusing connections without TLS. `verify-full` passes with the CA given and fails, clearly,
//! without it, with another CA, and with a host name the certificate does not name; a client
//! certificate gets a user in whom pg_hba.conf trusts by certificate only.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Harness;
use hubsync::sync::RunStatus;

/// Runs a command, panicking with its output when it fails.
fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// PostgreSQL's server programs: `HUBSYNC_TEST_PG_BIN`, `pg_config --bindir`, or Debian's folder.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("HUBSYNC_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect(
        "this test starts its own PostgreSQL cluster: install PostgreSQL's server (initdb, pg_ctl) or set \
         HUBSYNC_TEST_PG_BIN to the folder holding them",
    )
}

/// Root may not run the server: run its programs as the `postgres` OS user then.
fn as_server_user(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A certificate signed by `ca`, for `extensions` (an openssl extension file's lines).
fn signed(dir: &Path, name: &str, subject: &str, ca: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", subject]));
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        &format!("{name}.csr"),
        "-CA",
        &format!("{ca}.crt"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &format!("{name}.crt"),
        "-extfile",
        &format!("{name}.ext"),
    ]));
}

/// A self-signed CA.
fn certificate_authority(dir: &Path, name: &str, cn: &str) {
    let config = format!(
        "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n[dn]\nCN = {cn}\n[v3_ca]\n\
         basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
    );
    std::fs::write(dir.join(format!("{name}.cnf")), config).unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-config", &format!("{name}.cnf"), "-keyout", &format!("{name}.key"), "-out", &format!("{name}.crt")])
        .args(["-days", "2"]));
}

/// A PostgreSQL cluster that takes TLS connections only, stopped when dropped.
struct TlsCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl TlsCluster {
    async fn start() -> TlsCluster {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().to_path_buf();
        let root = root_path.as_path();
        certificate_authority(root, "ca", "hubsync test CA");
        certificate_authority(root, "other_ca", "some other CA");
        signed(
            root,
            "server",
            "/CN=localhost",
            "ca",
            "subjectAltName = DNS:localhost\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
        );
        signed(root, "client", "/CN=certuser", "ca", "basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n");
        let data = root.join("data");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(root));
        }
        run(as_server_user(&bin.join("initdb")).args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"]).arg(&data));
        let port = free_port();
        let path = |name: &str| root.join(name).display().to_string();
        let settings = format!(
            "\nport = {port}\nlisten_addresses = 'localhost'\nunix_socket_directories = '{}'\nssl = on\n\
             ssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\nfsync = off\n",
            root.display(),
            path("server.crt"),
            path("server.key"),
            path("ca.crt"),
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&conf, text).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostnossl all all all reject\n\
             hostssl all certuser all cert\n\
             hostssl all all all trust\n",
        )
        .unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(root));
        }
        run(as_server_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-w", "-t", "60", "start"]));
        let cluster = TlsCluster { dir, bin, port };
        let (client, conn) = tokio_postgres::connect(
            &format!("host={} port={port} user=postgres dbname=postgres", root.display()),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the TLS cluster over its Unix socket");
        tokio::spawn(conn);
        client
            .batch_execute(
                "CREATE ROLE certuser LOGIN;
                 CREATE TABLE users AS SELECT i AS id, 'tls' || i || '@example.com' AS email FROM generate_series(1, 30) i;
                 GRANT SELECT ON users TO certuser;",
            )
            .await
            .expect("fill the TLS cluster");
        cluster
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

const SYNC: &str = r#"
[[syncs]]
name = "contacts"
model = "SELECT id, email FROM users"
primary_key = "id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email" }
"#;

/// Runs the sync against the TLS cluster with this warehouse section's extra lines.
async fn sync_with(h: &Harness, url: &str, extra: &str) -> hubsync::sync::RunSummary {
    let text = format!(
        "[warehouses.secure]\ntype = \"postgres\"\nurl = \"{url}\"\n{extra}\n\n[hubspot.main]\ntoken = \"t\"\nbase_url = \"{}\"\n{SYNC}",
        h.emulator.base_url()
    );
    std::fs::write(h.config_path(), text).unwrap();
    h.run("contacts").await
}

fn failed_with(summary: &hubsync::sync::RunSummary, words: &[&str]) {
    assert_eq!(summary.status, RunStatus::Failed, "the run should have failed");
    let error = summary.error.clone().unwrap_or_default();
    assert!(error.contains("warehouse `secure`"), "names the warehouse: {error}");
    for w in words {
        assert!(error.contains(w), "`{w}` missing from: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_trusts_the_ca_it_is_given_and_refuses_the_rest_clearly() {
    let cluster = TlsCluster::start().await;
    let h = Harness::new().await;
    let port = cluster.port;
    let ca = cluster.file("ca.crt");
    let localhost = format!("postgres://postgres@localhost:{port}/postgres?sslmode=verify-full");

    let without_ca = sync_with(&h, &localhost, "").await;
    failed_with(&without_ca, &["not signed by the web PKI roots", "set sslrootcert"]);

    let other_ca = cluster.file("other_ca.crt");
    let wrong_ca = sync_with(&h, &format!("{localhost}&sslrootcert={other_ca}"), "").await;
    failed_with(&wrong_ca, &[&format!("not signed by the CA certificates in sslrootcert = {other_ca}")]);

    let by_ip = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full");
    let wrong_name = sync_with(&h, &by_ip, &format!("sslrootcert = \"{ca}\"")).await;
    failed_with(&wrong_name, &["not valid for host `127.0.0.1`", "verify-ca"]);
    assert_eq!(h.emulator.record_count("contacts"), 0, "nothing was read from a server not trusted");

    let trusted = sync_with(&h, &localhost, &format!("sslrootcert = \"{ca}\"")).await;
    assert_eq!(trusted.status, RunStatus::Succeeded, "{:?}", trusted.error);
    assert_eq!(h.emulator.record_count("contacts"), 30);

    // verify-ca checks the chain only, so the IP address is fine; the CA may be in the URL.
    let chain_only =
        sync_with(&h, &format!("{}&sslrootcert={ca}", by_ip.replace("verify-full", "verify-ca")), "").await;
    assert_eq!(chain_only.status, RunStatus::Succeeded, "{:?}", chain_only.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_logs_in_where_pg_hba_asks_for_one() {
    let cluster = TlsCluster::start().await;
    let h = Harness::new().await;
    let url = format!("postgres://certuser@localhost:{}/postgres?sslmode=verify-full", cluster.port);
    let ca = format!("sslrootcert = \"{}\"", cluster.file("ca.crt"));

    let without = sync_with(&h, &url, &ca).await;
    failed_with(&without, &["certificate"]);

    let files =
        format!("{ca}\nsslcert = \"{}\"\nsslkey = \"{}\"", cluster.file("client.crt"), cluster.file("client.key"));
    let with = sync_with(&h, &url, &files).await;
    assert_eq!(with.status, RunStatus::Succeeded, "{:?}", with.error);
    assert_eq!(h.emulator.record_count("contacts"), 30);
}
