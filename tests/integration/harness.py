"""Integration test harness: real gpg, real smtp-sink, real LMDB, real binaries.

Each test builds an Env: a short temp directory holding a GNUPGHOME with the
clinic's key, a token key, a store and a config pointing at the repo's
templates and at a Postfix smtp-sink on a free loopback port. Patients' own
keys live in separate GNUPGHOMEs, so that decrypting proves the message was
encrypted to them. Stdlib only.
"""
import calendar
import copy
import email
import email.message
import email.policy
import email.utils
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.environ.get("CAREPOST_TOP") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
CTL = os.path.join(BUILD, "carepostctl")
DAEMON = os.path.join(BUILD, "carepostd")
DATA = os.path.join(TOP, "tests", "data")
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"

# 2026-11-25 17:00 UTC: daytime in Chicago, New York and Madrid.
DAYTIME = calendar.timegm((2026, 11, 25, 17, 0, 0))

EVENT_TYPES = [
    "appointment_scheduled", "appointment_reminder", "appointment_cancelled",
    "referral_update", "refill_ready", "refill_status", "benefits_update",
    "contact_info_changed", "statement_ready", "payment_due",
    "payment_received", "form_request", "provider_message", "test_result",
    "visit_summary", "health_record_updated", "education_article",
    "evisit_update", "checkup_reminder", "immunization_reminder",
    "proxy_access_granted", "account_invite",
]
# subscription mail (docs/events.md): recalls and education
UNSUBSCRIBE_TYPES = {"checkup_reminder", "immunization_reminder", "education_article"}

CANARY = "PHI-CANARY"


class Skip(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


def gpg(home, *args, input=None, check=True):
    # --ignore-time-conflict: a key made a moment ago is "created 1 second
    # in the future" for gpg when a virtual machine's clock steps back
    # between two runs (seen here); what carepost believes of a
    # signature's time is carepost's own check, not this one.
    cmd = ["gpg", "--homedir", home, "--batch", "--yes", "--quiet",
           "--ignore-time-conflict",
           "--pinentry-mode", "loopback", "--passphrase", ""] + list(args)
    p = subprocess.run(cmd, input=input, capture_output=True)
    if check and p.returncode != 0:
        raise RuntimeError("gpg %s failed: %s" % (args[:2], p.stderr.decode(errors="replace")))
    return p


def make_home(path):
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def make_key(home, uid, expire="never"):
    """Generate an ed25519 signing key with a cv25519 encryption subkey."""
    gpg(home, "--quick-gen-key", uid, "ed25519", "sign,cert", expire)
    out = gpg(home, "--with-colons", "--list-secret-keys", uid).stdout.decode()
    fpr = [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]
    gpg(home, "--quick-add-key", fpr, "cv25519", "encr", expire)
    return fpr


def export_key(home, fpr, armor=True):
    return gpg(home, *(["--armor"] if armor else []), "--export", fpr).stdout


DOVECOT = "/usr/sbin/dovecot"
IMAP_USER, IMAP_PASSWORD = "carepost", "imap-secret"


class Dovecot:
    """A throwaway Dovecot on loopback: its own
    config, passwd-file user, maildir under a temp dir, uid vmail."""

    def __init__(self, base):
        import pwd
        if not os.access(DOVECOT, os.X_OK):
            raise Skip("%s is not installed (dovecot-imapd)" % DOVECOT)
        if os.geteuid() != 0:
            raise Skip("Dovecot tests run as root (it drops to vmail)")
        try:
            pw = pwd.getpwnam("vmail")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", "vmail"], check=True)
            pw = pwd.getpwnam("vmail")
        self.dir = base
        os.makedirs(os.path.join(base, "mail"), exist_ok=True)
        os.chmod(base, 0o755)
        os.chown(os.path.join(base, "mail"), pw.pw_uid, pw.pw_gid)
        with open(os.path.join(base, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s\n" % (IMAP_USER, IMAP_PASSWORD))
        self.port = None
        self.proc = None
        self.start()

    def start(self):
        if self.port is None:
            self.port = free_port()
        conf = os.path.join(self.dir, "dovecot.conf")
        with open(conf, "w") as f:
            f.write("""base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log
info_log_path = {d}/log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid=vmail gid=vmail home={d}/mail/%u
}}
mail_location = maildir:{d}/mail/%u/Maildir
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""".format(d=self.dir, port=self.port))
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_port(self.port)

    def stop(self):
        if self.proc:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None

    def imap(self):
        import imaplib
        c = imaplib.IMAP4("127.0.0.1", self.port)
        c.login(IMAP_USER, IMAP_PASSWORD)
        return c

    def append(self, raw, folder="INBOX"):
        c = self.imap()
        typ, data = c.append(folder, None, None, raw)
        assert typ == "OK", data
        c.logout()

    def messages(self, folder):
        """The raw messages in folder (IMAP name, '.'-separated)."""
        c = self.imap()
        typ, _ = c.select(folder, readonly=True)
        if typ != "OK":
            c.logout()
            return []
        typ, data = c.uid("SEARCH", None, "ALL")
        out = []
        for uid in data[0].split():
            typ, d = c.uid("FETCH", uid, "(BODY.PEEK[])")
            assert typ == "OK", (typ, d)
            # None: moved away (by the daemon) since the SEARCH
            if d and d[0] is not None:
                out.append(d[0][1])
        c.logout()
        return out


class Env:
    def __init__(self, name="t"):
        self.dir = tempfile.mkdtemp(prefix="cp%s." % name[:4], dir="/tmp")
        self.home = make_home(os.path.join(self.dir, "g"))
        shutil.copy(os.path.join(TOP, "config", "gpg.conf"), self.home)
        self.store = os.path.join(self.dir, "store")
        self.sink_dir = os.path.join(self.dir, "sink")
        self.sink = None
        self.port = None
        self.logs = []
        self.now = DAYTIME
        self.clinic_fpr = make_key(self.home, "Lakeside Clinic <care@lakeside.test>")
        with open(os.path.join(self.dir, "token.key"), "wb") as f:
            f.write(os.urandom(32))
        self.config_extra = {}

    # ---- servers ----
    def start_sink(self, *opts):
        self.stop_sink()
        os.makedirs(self.sink_dir, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        self.sink = subprocess.Popen(
            [SMTP_SINK, "-u", "root", "-d", self.sink_dir + "/%M."] + list(opts)
            + ["127.0.0.1:%d" % self.port, "100"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop_sink(self):
        if self.sink:
            # a sink a test paused (SIGSTOP) would never see the SIGTERM
            self.sink.send_signal(signal.SIGCONT)
            self.sink.terminate()
            self.sink.wait()
            self.sink = None

    def sink_messages(self):
        """Every message at the sink: (envelope dict, raw bytes, Message)."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.sink_dir, "*"))):
            raw = open(path, "rb").read()
            env = {"rcpt": []}
            lines = raw.split(b"\n")
            i = 0
            while i < len(lines) and lines[i].startswith(b"X-"):
                k, _, v = lines[i].decode().partition(": ")
                if k == "X-Mail-Args":
                    env["from"] = v.strip("<>")
                elif k == "X-Rcpt-Args":
                    env["rcpt"].append(v.strip("<>"))
                i += 1
            # drop smtp-sink's own Received header (3 lines)
            if i < len(lines) and lines[i].startswith(b"Received:"):
                i += 1
                while i < len(lines) and lines[i][:1] in (b"\t", b" "):
                    i += 1
            body = b"\n".join(lines[i:])
            msg = email.message_from_bytes(body, policy=email.policy.default)
            out.append((env, body, msg))
        return out

    def clear_sink(self):
        for p in glob.glob(os.path.join(self.sink_dir, "*")):
            os.unlink(p)

    # ---- config and programs ----
    def write_config(self, **extra):
        self.config_extra.update(extra)
        sections = {
            "store": {"path": self.store},
            "smtp": {"server": "127.0.0.1:%d" % (self.port or free_port()),
                     "starttls": "off", "timeout": "10s", "batch_size": "50"},
            "gpg": {"home": self.home, "clinic_key": self.clinic_fpr,
                    "workers": "2"},
            "templates": {"dir": os.path.join(TOP, "templates"),
                          "default_locale": "en"},
            "portal": {"clinic_name": "Lakeside Clinic",
                       "portal_url": "https://portal.lakeside.test/login",
                       "from_address": "care@lakeside.test",
                       "from_name": "Lakeside Clinic",
                       "reply_domain": "reply.lakeside.test",
                       "bounce_domain": "bounce.lakeside.test",
                       "unsubscribe_address": "unsubscribe@lakeside.test"},
            "delivery": {"quiet_start": "21:00", "quiet_end": "08:00",
                         "retry_base": "5m", "retry_max": "1h",
                         "max_age": "2d", "poll_interval": "1s"},
            "security": {"token_key_file": os.path.join(self.dir, "token.key")},
        }
        for key, value in self.config_extra.items():
            sec, _, k = key.partition("__")
            sections.setdefault(sec, {})[k] = value
        self.config = os.path.join(self.dir, "carepost.conf")
        with open(self.config, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    if v is not None:
                        f.write("%s = %s\n" % (k, v))
        return self.config

    def env(self):
        e = dict(os.environ)
        e["CAREPOST_NOW"] = str(self.now)
        e["GNUPGHOME"] = self.home
        e.pop("NOTIFY_SOCKET", None)
        e.pop("JOURNAL_STREAM", None)
        return e

    def ctl(self, *args, input=None, check=True):
        p = subprocess.run([CTL, "-c", self.config] + list(args), input=input,
                           capture_output=True, env=self.env())
        self.logs.append(p.stderr)
        if check and p.returncode != 0:
            raise AssertionError("carepostctl %s exited %d: %s" % (
                " ".join(args), p.returncode, p.stderr.decode(errors="replace")))
        return p

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def once(self, check=True):
        p = subprocess.run([DAEMON, "-c", self.config, "--once"],
                           capture_output=True, env=self.env(), timeout=300)
        self.logs.append(p.stderr)
        if check and p.returncode != 0:
            raise AssertionError("carepostd --once exited %d: %s" % (
                p.returncode, p.stderr.decode(errors="replace")))
        return p

    def add_patient(self, rec):
        self.ctl("patient", "add", "-", input=json.dumps(rec).encode())

    def add_event(self, ev):
        self.ctl("event", "add", "-", input=json.dumps(ev).encode())

    def status(self, event_id):
        return self.ctl_json("status", event_id)

    def patient_key(self, name, expire="never"):
        """A recipient's own GNUPGHOME and key; returns (home, fpr)."""
        home = make_home(os.path.join(self.dir, name[:6]))
        fpr = make_key(home, "%s <%s@patients.test>" % (name, name), expire)
        # the recipient can verify the clinic's signature
        gpg(home, "--import", input=export_key(self.home, self.clinic_fpr))
        return home, fpr

    def import_key(self, home, fpr, patient, proxy=None):
        path = os.path.join(self.dir, "k.asc")
        with open(path, "wb") as f:
            f.write(export_key(home, fpr))
        args = ["key", "import", path, "--patient", patient]
        if proxy is not None:
            args += ["--proxy", str(proxy)]
        return self.ctl(*args).stdout.decode().strip()

    def all_logs(self):
        return b"".join(self.logs)

    def start_dovecot(self):
        # Dovecot's auth and mail processes (users dovenull, vmail) must
        # get through: traverse only, no listing
        os.chmod(self.dir, 0o711)
        self.dovecot = Dovecot(os.path.join(self.dir, "dove"))
        with open(os.path.join(self.dir, "imap.pw"), "w") as f:
            f.write(IMAP_PASSWORD + "\n")
        return self.dovecot

    def imap_config(self):
        """[imap] keys for write_config, pointing at start_dovecot's server."""
        return {"imap__host": "127.0.0.1", "imap__port": str(self.dovecot.port),
                "imap__tls": "off", "imap__user": IMAP_USER,
                "imap__password_file": os.path.join(self.dir, "imap.pw"),
                "imap__mailbox": "INBOX",
                "imap__processed_folder": "carepost/processed",
                "imap__quarantine_folder": "carepost/quarantine",
                "imap__poll_interval": "1s", "imap__batch_size": "10"}

    def close(self):
        if getattr(self, "dovecot", None):
            self.dovecot.stop()
        self.stop_sink()
        for home in glob.glob(os.path.join(self.dir, "*")):
            if os.path.isdir(home) and os.path.exists(os.path.join(home, "pubring.kbx")):
                subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"],
                               capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def sample_data(event_type):
    with open(os.path.join(DATA, "events", event_type + ".json")) as f:
        return json.load(f)


def load_patients(env):
    """Store the sample patients; import keys for the adult and proxy 1."""
    with open(os.path.join(DATA, "patients.json")) as f:
        patients = json.load(f)
    homes = {}
    for p in patients:
        p = copy.deepcopy(p)
        if p.get("pgp_fpr", "") and p["pgp_fpr"].startswith("KEY:"):
            p["pgp_fpr"] = None
        for proxy in p.get("proxies", []):
            if proxy.get("pgp_fpr") and proxy["pgp_fpr"].startswith("KEY:"):
                proxy["pgp_fpr"] = None
        env.add_patient(p)
    homes["adult.key@patients.test"], fpr = env.patient_key("adult")
    assert env.import_key(homes["adult.key@patients.test"], fpr, "p-adult-key") == fpr
    homes["proxy1.key@proxies.test"], fpr = env.patient_key("proxy1")
    env.import_key(homes["proxy1.key@proxies.test"], fpr, "p-minor", proxy=0)
    return homes


def decrypt(home, raw_armor):
    """Decrypt as the recipient; returns (plaintext bytes, status lines)."""
    p = subprocess.run(["gpg", "--homedir", home, "--batch", "--status-fd", "2",
                        "--decrypt"], input=raw_armor, capture_output=True)
    if p.returncode != 0:
        raise AssertionError("gpg --decrypt failed: %s" % p.stderr.decode(errors="replace"))
    status = [l for l in p.stderr.decode(errors="replace").splitlines()
              if l.startswith("[GNUPG:]")]
    return p.stdout, status


def pgp_parts(msg):
    """Check RFC 3156 structure; return the armored payload bytes."""
    assert msg.get_content_type() == "multipart/encrypted", msg.get_content_type()
    assert msg.get_param("protocol") == "application/pgp-encrypted"
    parts = list(msg.iter_parts())
    assert len(parts) == 2, len(parts)
    assert parts[0].get_content_type() == "application/pgp-encrypted"
    assert b"Version: 1" in parts[0].get_payload(decode=True)
    assert parts[1].get_content_type() == "application/octet-stream"
    return parts[1].get_payload(decode=True)


def keep_logs(env, name):
    """Leave what the programs logged in $CAREPOST_LOGDIR for tests/phi-scan,
    which greps every integration test's logs for PHI at the end."""
    logdir = os.environ.get("CAREPOST_LOGDIR")
    if not logdir:
        return
    os.makedirs(logdir, exist_ok=True)
    script = os.path.basename(sys.argv[0])
    with open(os.path.join(logdir, "%s.%s.log" % (script, name)), "wb") as f:
        f.write(env.all_logs())


def run(test_fn, name):
    """Run one test function with an Env; exit 0, 1 or 77 (skip)."""
    env = None
    try:
        for tool in (CTL, DAEMON, SMTP_SINK):
            if not os.access(tool, os.X_OK):
                raise Skip("%s is missing" % tool)
        env = Env(name)
        test_fn(env)
        logs = env.all_logs()
        assert CANARY.encode() not in logs, "PHI canary reached a log line"
        print("ok: %s" % name)
        return 0
    except Skip as e:
        print("skipped: %s" % e)
        return 77
    finally:
        if env:
            keep_logs(env, name)
            env.close()


def main(tests):
    """tests: list of functions taking an Env. Prints a closing line."""
    failed = skipped = 0
    only = sys.argv[1:] or None
    for fn in tests:
        if only and fn.__name__ not in only:
            continue
        try:
            rc = run(fn, fn.__name__)
            if rc == 77:
                skipped += 1
        except Exception:
            import traceback
            traceback.print_exc()
            print("FAILED: %s" % fn.__name__)
            failed += 1
    n = len([t for t in tests if not only or t.__name__ in only])
    print("%d passed, %d failed, %d skipped" % (n - failed - skipped, failed, skipped))
    sys.exit(1 if failed else (77 if skipped == n else 0))


def build_mail(frm, to, subject, body, msgid=None, **headers):
    """A patient's plain reply as bytes: Message-ID <msgid@patients.test>
    (a fresh one when msgid is None), a fixed Date; each keyword is a
    header (underscores become hyphens; a list gives the header once per
    value)."""
    m = email.message.EmailMessage()
    m["From"] = frm
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = ("<%s@patients.test>" % msgid if msgid is not None
                       else email.utils.make_msgid(domain="patients.test"))
    m["Date"] = "Wed, 25 Nov 2026 17:00:00 +0000"
    for k, v in headers.items():
        for x in (v if isinstance(v, list) else [v]):
            m[k.replace("_", "-")] = x
    m.set_content(body)
    return m.as_bytes()


def assert_sent_as_notice(env, event_id, why):
    """Event event_id went out as a notice without PHI, and its recipient
    entry notes why the key on file could not be used (why in the note).
    Returns the parsed message (the only one the sink holds)."""
    st = env.status(event_id)
    assert st["state"] == "sent", st
    rc = st["recipients"][0]
    assert rc["mode"] == "notice" and why in rc.get("note", ""), rc
    msgs = env.sink_messages()
    assert len(msgs) == 1, [m[0] for m in msgs]
    assert CANARY.encode() not in msgs[0][1]
    return msgs[0][2]


def make_install(prefix, tmp_prefix):
    """`make install` of this build into a fresh DESTDIR /tmp/TMP_PREFIX*
    with PREFIX=prefix; returns the DESTDIR (the caller removes it).
    Skip when make, install or the programs are missing."""
    for tool in ("make", "install"):
        if shutil.which(tool) is None:
            raise Skip("%s is not installed" % tool)
    for prog in ("carepostd", "carepostctl"):
        if not os.access(os.path.join(BUILD, prog), os.X_OK):
            raise Skip("%s/%s is not built" % (BUILD, prog))
    root = tempfile.mkdtemp(prefix=tmp_prefix, dir="/tmp")
    p = subprocess.run(["make", "-s", "-C", TOP, "install", "DESTDIR=" + root,
                        "PREFIX=" + prefix, "BUILD=" + os.path.relpath(BUILD, TOP)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise AssertionError("make install failed (%d):\n%s%s" %
                             (p.returncode, p.stdout, p.stderr))
    return root


def run_plain(tests):
    """Run test functions that take no Env (the tests of an install): print
    each outcome and the closing line; return the exit code (0, 1, or 77
    when all skipped)."""
    failed = skipped = 0
    for fn in tests:
        try:
            fn()
            print("ok: %s" % fn.__name__)
        except Skip as e:
            print("skipped: %s: %s" % (fn.__name__, e))
            skipped += 1
        except Exception:
            import traceback
            traceback.print_exc()
            print("FAILED: %s" % fn.__name__)
            failed += 1
    n = len(tests)
    print("%d passed, %d failed, %d skipped" % (n - failed - skipped, failed, skipped))
    return 1 if failed else (77 if skipped == n else 0)


def median_round(rounds):
    """For the benches: the round with the median ratio, from (ratio, ours,
    yardstick) tuples (a round's two runs see much the same machine)."""
    return sorted(rounds)[len(rounds) // 2]
