/*
 * NAME
 *	carepostctl - the admin and portal tool for carepost
 * SYNOPSIS
 *	carepostctl [-c FILE] [--json] COMMAND [ARGS]
 * DESCRIPTION
 *	patient add [FILE|-]         write a patient (JSON) into the store
 *	patient show ID              print a patient record
 *	patient list                 list patient ids
 *	key import FILE [--patient ID [--proxy N]]
 *	                             import an OpenPGP key into the keyring;
 *	                             with --patient, record its fingerprint
 *	key sync                     (re)write every key's own file from the
 *	                             keyring (keys put there by other means)
 *	event add [FILE|-]           write an event (JSON), as the portal does
 *	queue [--limit N]            events not yet in a final state
 *	status EVENT_ID              an event's delivery state (no PHI)
 *	retry EVENT_ID               send a queued or deferred event again now
 *	render TEMPLATE DATA [--text]
 *	                             render a mustache file with a JSON file;
 *	                             {{> name}} loads name.mustache beside it
 *	stats                        counts by state, queue depth, oldest due
 *	ingest FILE|- [--dry-run]    file one RFC 5322 message as if fetched
 *	                             from IMAP; --dry-run decides without
 *	                             writing and prints the decision as JSON
 *	inbox PATIENT                a patient's inbox (decrypted previews)
 *	read PATIENT MSG             one inbox message, decrypted
 *	clinic-queue [DEPT] [--limit N] [--after DEPT/ID]
 *	                             the clinic queue, a page at a time (no PHI)
 *	quarantine                   what inbound quarantined, and why (no PHI)
 *	backup DIR                   a consistent, compacting hot copy of the
 *	                             store (data.mdb, sending.journal) into a
 *	                             new or empty DIR; no key material
 *	prune [--dry-run]            one retention pass now ([retention],
 *	                             lib/retain): what outlived its lifetime
 *	                             is deleted, in small transactions;
 *	                             --dry-run counts without deleting
 *
 *	ingest runs gpg on the message (outside data) only in a gpg helper
 *	(lib/pgphelper: carepost-pgp, or this program started as one), under
 *	the limits carepostd has ([gpg] time_limit, 50 MiB of plaintext);
 *	the rest of carepostctl's gpg work (keys, inboxes at rest) is its
 *	own data and runs in-process.
 * DIAGNOSTICS
 *	Errors go to stderr as "carepostctl: ..."; exit codes from sysexits.h:
 *	EX_USAGE, EX_DATAERR (bad input; a store of another format version),
 *	EX_NOINPUT (no such record; backup: no store), EX_CANTCREAT (backup:
 *	DIR not empty or not writable), EX_CONFIG, EX_IOERR (store),
 *	EX_SOFTWARE, EX_TEMPFAIL (ingest met an infrastructure failure:
 *	nothing was written, try again).
 */
#include <getopt.h>
#include <libgen.h>
#include <sysexits.h>
#include <time.h>

#include "atrest.h"
#include "event.h"
#include "inbound.h"
#include "inbox.h"
#include "intake.h"
#include "log.h"
#include "pgp.h"
#include "parsehelper.h"
#include "patient.h"
#include "pgphelper.h"
#include "pgpserve.h"
#include "audit.h"
#include "checkpoint.h"
#include "unsub.h"
#include "queue.h"
#include "record.h"
#include "retain.h"
#include "runtime.h"
#include "storefmt.h"
#include "template.h"
#include "wake.h"
#include "keycheck.h"

static int json_output;
static const char *config_arg;

static int
fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("carepostctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static void
usage(FILE *f)
{
	fputs("usage: carepostctl [-c FILE] [--json] COMMAND [ARGS]\n"
	      "commands:\n"
	      "  patient add [FILE|-]      write a patient record (JSON)\n"
	      "  patient show ID           print a patient record\n"
	      "  patient list              list patient ids\n"
	      "  key import FILE [--patient ID [--proxy N]]\n"
	      "                            import a public key; record its fingerprint\n"
	      "  key sync                  write every key's own file from the keyring\n"
	      "  event add [FILE|-]        write a portal event (JSON)\n"
	      "  queue [--limit N]         events not yet final, in due order\n"
	      "  status EVENT_ID           delivery state of an event\n"
	      "  retry EVENT_ID            send a queued or deferred event again now\n"
	      "  render TEMPLATE DATA [--text]  render a template with JSON data\n"
	      "  stats                     counts by delivery state\n"
	      "  ingest FILE|- [--dry-run] file one RFC 5322 message as if fetched;\n"
	      "                            --dry-run prints the decision as JSON, writes nothing\n"
	      "  inbox PATIENT [--reason TEXT]\n"
	      "                            a patient's inbox messages (decrypted previews)\n"
	      "  read PATIENT MSG [--reason TEXT]\n"
	      "                            one inbox message: text, form fields, attachments\n"
	      "                            (each read or listing is audited, with the reason)\n"
	      "  clinic-queue [DEPT] [--limit N] [--after DEPT/INBOX_ID]\n"
	      "                            the clinic queue, all departments or one, a page at a time\n"
	      "  quarantine                what was quarantined: when, where, why (no PHI)\n"
	      "  audit verify [--checkpoints FILE]\n"
	      "                            check the audit trail's chain and its signed\n"
	      "                            checkpoints; name the first bad record\n"
	      "  audit checkpoint          sign a checkpoint of the trail's head now\n"
	      "  unsubscribe TOKEN         apply a one-click unsubscribe the portal received\n"
	      "  wake                      tell carepostd new events are in (send now)\n"
	      "  keys                      the keys on file and when they expire\n"
	      "  audit export [--patient ID] [--since T] [--until T] [--reason TEXT]\n"
	      "                            the audit trail as FHIR AuditEvent JSON lines\n"
	      "  backup DIR                a consistent compacted copy of the store, while\n"
	      "                            carepostd runs, into a new or empty DIR (no keys)\n"
	      "  prune [--dry-run]         one retention pass now; --dry-run only counts\n"
	      "  scrub                     overwrite freed store pages (no PHI residue)\n"
	      "options:\n"
	      "  -c, --config FILE  configuration (default /etc/carepost/carepost.conf)\n"
	      "  -j, --json         machine-readable output\n"
	      "  -h, --help, -V, --version\n", f);
}

static int
open_rt(struct runtime *rt, int flags)
{
	struct cp_error err;
	const char *path = runtime_config_path(config_arg);

	cp_error_clear(&err);
	if (runtime_open(rt, path, flags, &err) < 0) {
		runtime_close(rt);
		return fail(err.code == -ENOENT || err.code == -EINVAL ? EX_CONFIG :
			    err.code == -EPROTO || err.code == -EBADMSG ? EX_DATAERR :
			    EX_IOERR, "%s", err.text);
	}
	return 0;
}

/*
 * audit_access - the audit record of an access by this Unix user (audit.h),
 * in a transaction of its own, committed before what it records is shown.
 */
static int
audit_access(struct store *st, enum audit_action action, const char *patient,
	     const char *inbox, const char *key, const char *reason)
{
	char actor[AUDIT_ACTOR_MAX + 1];
	struct audit_event ev = { .action = action, .actor = actor,
				  .reason = reason, .patient = patient,
				  .inbox = inbox, .key = key };
	struct cp_error err;

	cp_error_clear(&err);
	if (audit_actor_ctl(actor, sizeof(actor), &err) < 0 ||
	    audit_record_one(st, &ev, &err) < 0)
		return fail(err.code == -EINVAL ? EX_USAGE : EX_IOERR,
			    "audit: %s: nothing shown", err.text);
	return 0;
}

/*
 * take_reason - "--reason TEXT" out of argv (a reason for the audit
 * record of a read: checked by audit_reason_check). Returns the count of
 * the arguments left, in order, or -1 after an error was printed.
 */
static int
take_reason(int argc, char **argv, const char **reason)
{
	struct cp_error err;
	int i, n = 0;

	*reason = NULL;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--reason") == 0) {
			if (i + 1 >= argc) {
				fail(EX_USAGE, "--reason: TEXT is required");
				return -1;
			}
			*reason = argv[++i];
			continue;
		}
		argv[n++] = argv[i];
	}
	cp_error_clear(&err);
	if (audit_reason_check(*reason, &err) < 0) {
		fail(EX_USAGE, "--%s", err.text);
		return -1;
	}
	return n;
}

static int
read_input(const char *arg, char **text, size_t *len)
{
	int r;

	if (arg == NULL || strcmp(arg, "-") == 0)
		r = cp_read_file("/dev/stdin", EVENT_JSON_MAX, text, len);
	else
		r = cp_read_file(arg, EVENT_JSON_MAX, text, len);
	if (r < 0)
		return fail(r == -EFBIG ? EX_DATAERR : EX_NOINPUT, "%s: %s",
			    arg ? arg : "stdin", strerror(-r));
	return 0;
}

static json_t *
parse_json(const char *text, size_t len, const char *what)
{
	json_error_t jerr;
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

	if (v == NULL)
		fail(EX_DATAERR, "%s: invalid JSON at line %d, column %d: %s", what,
		     jerr.line, jerr.column, jerr.text);
	return v;
}

static void
print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);

	if (s) {
		puts(s);
		free(s);
	}
}

/* print_json_take - print_json of a new value, which it then releases. */
static void
print_json_take(json_t *v)
{
	print_json(v);
	json_decref(v);
}

static int
cmd_patient_add(const char *arg)
{
	_cleanup_free_ char *text = NULL;
	struct runtime rt;
	struct cp_error err;
	char reason[160];
	json_t *p;
	size_t len;
	int r;

	if ((r = read_input(arg, &text, &len)) != 0)
		return r;
	if ((p = parse_json(text, len, "patient")) == NULL)
		return EX_DATAERR;
	if (patient_validate(p, reason, sizeof(reason)) < 0) {
		json_decref(p);
		return fail(EX_DATAERR, "patient: %s", reason);
	}
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0) {
		json_decref(p);
		return r;
	}
	r = store_put_json(rt.store, DB_PATIENTS,
			   json_string_value(json_object_get(p, "id")), p, &err);
	if (r == 0 && !json_output)
		printf("patient %s stored\n", json_string_value(json_object_get(p, "id")));
	else if (r == 0)
		print_json_take(json_pack("{s:O, s:b}", "id", json_object_get(p, "id"), "stored", 1));
	json_decref(p);
	runtime_close(&rt);
	return r < 0 ? fail(EX_IOERR, "%s", err.text) : 0;
}

static int
cmd_patient_show(const char *id)
{
	struct runtime rt;
	struct cp_error err;
	json_t *v;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	r = store_get_json(rt.store, DB_PATIENTS, id, &v, &err);
	runtime_close(&rt);
	if (r == -ENOENT)
		return fail(EX_NOINPUT, "%s: no such record", id);
	if (r < 0)
		return fail(EX_IOERR, "%s", err.text);
	print_json(v);
	json_decref(v);
	return 0;
}

static int
cmd_status(const char *id)
{
	struct runtime rt;
	struct cp_error err;
	struct delivery d;
	size_t i;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	r = queue_get(rt.store, id, &d, &err);
	runtime_close(&rt);
	if (r == -ENOENT)
		return fail(EX_NOINPUT, "%s: no such record", id);
	if (r < 0)
		return fail(EX_IOERR, "%s", err.text);
	if (json_output) {
		/* status is for people and scripts: the PHI payload stays out */
		print_json_take(delivery_dump_public(&d));
		delivery_clear(&d);
		return 0;
	}
	printf("event:    %s\ntype:     %s\nstate:    %s\n", d.id,
	       d.type ? d.type : "-", delivery_state_name(d.state));
	if (d.reason)
		printf("reason:   %s\n", d.reason);
	printf("attempts: %lld\n", d.attempts);
	for (i = 0; i < d.nrcpts; i++) {
		const struct delivery_rcpt *rc = &d.rcpts[i];

		printf("  %-10s %-9s %-9s %s %s\n", rc->ref ? rc->ref : "",
		       rcpt_mode_name(rc->mode) ?: "", rcpt_state_name(rc->state),
		       rc->message_id ? rc->message_id : "", rc->reason ? rc->reason : "");
	}
	delivery_clear(&d);
	return 0;
}

static int
each_patient_id(void *ud, const char *key, size_t keylen, json_t *value)
{
	json_array_append_new(ud, json_stringn(key, keylen));
	return 0;
}

static int
cmd_patient_list(void)
{
	struct runtime rt;
	struct cp_error err;
	json_t *ids = json_array(), *v;
	size_t i;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0) {
		json_decref(ids);
		return r;
	}
	r = store_foreach(rt.store, DB_PATIENTS, each_patient_id, ids, &err);
	runtime_close(&rt);
	if (r < 0) {
		json_decref(ids);
		return fail(EX_IOERR, "%s", err.text);
	}
	if (json_output)
		print_json(ids);
	else
		json_array_foreach(ids, i, v)
			puts(json_string_value(v));
	json_decref(ids);
	return 0;
}

/* One row of "keys": printed at once, or gathered for --json. */
struct keys_out {
	json_t *rows;			/* --json */
	size_t by_state[KEYCHECK_MISSING + 1];
};

static int
keys_row(void *userdata, const struct keycheck_key *k)
{
	struct keys_out *o = userdata;
	long long days = k->expires > 0 ? (k->expires - (long long)cp_now()) / 86400 : -1;

	o->by_state[k->state]++;
	if (o->rows != NULL) {
		json_t *r = json_pack("{s:s, s:s, s:s, s:s}", "patient", k->patient,
				      "recipient", k->ref, "fingerprint", k->fpr,
				      "state", keycheck_state_name(k->state));

		if (r == NULL)
			return -ENOMEM;
		json_object_set_new(r, "key_expires", k->expires > 0 ?
				    json_integer(k->expires) : json_null());
		return json_array_append_new(o->rows, r) == 0 ? 0 : -ENOMEM;
	}
	if (k->expires > 0)
		printf("%-24s %-9s %s %-13s expires %lld (%lld days)\n", k->patient, k->ref,
		       k->fpr, keycheck_state_name(k->state), k->expires, days);
	else
		printf("%-24s %-9s %s %-13s %s\n", k->patient, k->ref, k->fpr,
		       keycheck_state_name(k->state),
		       k->state == KEYCHECK_MISSING ? "not in the keyring" :
		       k->state == KEYCHECK_OK ? "never expires" : "");
	return 0;
}

/* cmd_keys - the OpenPGP keys on file, with their expiry (keycheck.h). */
static int
cmd_keys(void)
{
	struct keys_out o = { json_output ? json_array() : NULL, { 0 } };
	struct runtime rt;
	struct cp_error err;
	struct pgp *p = NULL;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0) {
		json_decref(o.rows);
		return r;
	}
	cp_error_clear(&err);
	r = pgp_global_init();
	if (r == 0)
		r = pgp_new(rt.cfg->gpg_home, NULL, &p, &err);
	if (r == 0)
		r = keycheck_each(rt.store, p, cp_now(), keys_row, &o, &err);
	pgp_free(p);
	runtime_close(&rt);
	if (r < 0) {
		json_decref(o.rows);
		return fail(r == -ENOMEM ? EX_OSERR : EX_UNAVAILABLE, "keys: %s",
			    err.text[0] ? err.text : strerror(-r));
	}
	if (o.rows != NULL) {
		json_t *counts = json_object();

		for (int i = 0; i <= KEYCHECK_MISSING; i++)
			json_object_set_new(counts, keycheck_state_name(i),
					    json_integer((json_int_t)o.by_state[i]));
		print_json_take(json_pack("{s:o, s:o}", "keys", o.rows, "by_state", counts));
	}
	return 0;
}

/*
 * cmd_key_sync - the key files (keyfile.h) of every key in the keyring:
 * for keys imported with gpg itself, or by a carepost older than them.
 */
static int
cmd_key_sync(int argc, char **argv)
{
	struct runtime rt;
	struct cp_error err;
	struct pgp *p = NULL;
	size_t written = 0;
	int r;

	if (argc > 0)
		return fail(EX_USAGE, "key sync: unexpected argument %s", argv[0]);
	if ((r = open_rt(&rt, 0)) != 0)
		return r;
	pgp_global_init();
	cp_error_clear(&err);
	r = pgp_new(rt.cfg->gpg_home, NULL, &p, &err);
	if (r == 0)
		r = pgp_keyfiles_sync(p, NULL, 0, &written, &err);
	pgp_free(p);
	runtime_close(&rt);
	if (r < 0)
		return fail(EX_IOERR, "key sync: %s", err.text);
	if (json_output)
		print_json_take(json_pack("{s:I}", "written", (json_int_t)written));
	else
		printf("%zu key%s written\n", written, written == 1 ? "" : "s");
	return 0;
}

static int
cmd_key_import(int argc, char **argv)
{
	_cleanup_free_ char *data = NULL;
	const char *file = NULL, *patient = NULL, *want = NULL;
	long proxy = -1;
	int keys = 0;
	char fpr[PGP_FPR_SIZE], actor[AUDIT_ACTOR_MAX + 1];
	struct runtime rt;
	struct cp_error err;
	struct pgp *p = NULL;
	size_t len;
	int i, r;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--patient") == 0 && i + 1 < argc)
			patient = argv[++i];
		else if (strcmp(argv[i], "--proxy") == 0 && i + 1 < argc)
			proxy = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--fingerprint") == 0 && i + 1 < argc)
			want = argv[++i];
		else if (file == NULL)
			file = argv[i];
		else
			return fail(EX_USAGE, "key import: unexpected argument %s", argv[i]);
	}
	if (file == NULL)
		return fail(EX_USAGE, "key import: a key file (or -) is required");
	r = cp_read_file(strcmp(file, "-") == 0 ? "/dev/stdin" : file, 1 << 20, &data, &len);
	if (r < 0)
		return fail(EX_NOINPUT, "%s: %s", file, strerror(-r));
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)	/* the audit trail */
		return r;
	if ((r = audit_actor_ctl(actor, sizeof(actor), &err)) < 0) {
		runtime_close(&rt);
		return fail(EX_USAGE, "%s", err.text);
	}
	pgp_global_init();
	cp_error_clear(&err);
	r = pgp_new(rt.cfg->gpg_home, NULL, &p, &err);
	if (r == 0)
		r = pgp_import(p, data, len, fpr, &keys, &err);
	pgp_free(p);
	if (r < 0) {
		runtime_close(&rt);
		return fail(EX_DATAERR, "key import: %s", err.text);
	}
	/* A key to link to someone is one key, and the one expected: a file
	 * of several (gpg skips one without a user id and names the next)
	 * could link another's key under the fingerprint someone was shown. */
	if (r == 0 && (patient || want) && keys != 1) {
		runtime_close(&rt);
		return fail(EX_DATAERR, "key import: %s holds %d keys: one is expected; "
			    "nothing linked", file, keys);
	}
	if (r == 0 && want && strcasecmp(want, fpr) != 0) {
		runtime_close(&rt);
		return fail(EX_DATAERR, "key import: %s holds key %s, not the "
			    "expected %s: nothing linked", file, fpr, want);
	}
	if (r > 0 && want) {
		runtime_close(&rt);
		return fail(EX_DATAERR, "key import: %s holds revocations, not the "
			    "expected key %s: nothing linked", file, want);
	}
	if (r > 0) {
		/* Revocations, applied: from now on the keys they revoke get
		 * notices. Nothing names a key to link to a patient. */
		runtime_close(&rt);
		if (patient)
			fprintf(stderr, "carepostctl: key import: %s holds "
				"revocations, not a key: nothing linked to patient "
				"%s\n", file, patient);
		if (json_output)
			print_json_take(json_pack("{s:n, s:i}", "fingerprint", "revocations", r));
		else
			printf("%d revocation%s applied\n", r, r == 1 ? "" : "s");
		return 0;
	}
	if (patient) {
		r = patient_link_key(rt.store, patient, proxy, fpr, actor, &err);
		if (r < 0) {
			runtime_close(&rt);
			if (r == -ENOENT)
				return fail(EX_NOINPUT, "patient %s: %s", patient, err.text);
			return fail(r == -ENXIO ? EX_NOINPUT : EX_IOERR, "%s", err.text);
		}
	} else {
		struct audit_event ev = { .action = AUDIT_KEY_IMPORTED,
					  .actor = actor, .key = fpr };

		if ((r = audit_record_one(rt.store, &ev, &err)) < 0) {
			runtime_close(&rt);
			return fail(EX_IOERR, "key import: %s: audit: %s", fpr,
				    err.text);
		}
	}
	runtime_close(&rt);
	if (json_output)
		print_json_take(json_pack("{s:s}", "fingerprint", fpr));
	else
		printf("%s\n", fpr);
	return 0;
}

static int
cmd_event_add(const char *arg)
{
	_cleanup_free_ char *text = NULL;
	struct runtime rt;
	struct cp_error err;
	char reason[160];
	struct event e;
	json_t *ev;
	size_t len;
	int r;

	if ((r = read_input(arg, &text, &len)) != 0)
		return r;
	if ((ev = parse_json(text, len, "event")) == NULL)
		return EX_DATAERR;
	if (event_load(ev, &e, reason, sizeof(reason)) < 0) {
		json_decref(ev);
		return fail(EX_DATAERR, "event: %s", reason);
	}
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0) {
		json_decref(ev);
		return r;
	}
	r = intake_put_event(rt.store, e.id, text, len, &err);
	if (r == 0) {
		/* carepostd sends it now, not at its next poll (none
		 * listening: it will at that poll) */
		if (rt.cfg->wake_socket != NULL)
			(void)wake_send(rt.cfg->wake_socket);
		if (json_output)
			print_json_take(json_pack("{s:s, s:b}", "id", e.id, "queued", 1));
		else
			printf("event %s queued\n", e.id);
	}
	json_decref(ev);
	runtime_close(&rt);
	return r < 0 ? fail(EX_IOERR, "%s", err.text) : 0;
}

/* cmd_wake - tell the running carepostd "new events" ([daemon] wake_socket). */
static int
cmd_wake(void)
{
	struct runtime rt;
	char path[256];
	int r;

	if ((r = open_rt(&rt, 0)) != 0)
		return r;
	if (rt.cfg->wake_socket == NULL) {
		runtime_close(&rt);
		return fail(EX_CONFIG, "wake: [daemon] wake_socket is not set");
	}
	snprintf(path, sizeof(path), "%s", rt.cfg->wake_socket);
	runtime_close(&rt);
	r = wake_send(path);
	if (r == -EAGAIN)
		r = 0;			/* its queue is full: it is awake */
	if (r < 0)
		return fail(EX_UNAVAILABLE, "wake: %s: %s", path,
			    r == -ENOENT || r == -ECONNREFUSED ?
			    "no carepostd listens there" : strerror(-r));
	return 0;
}

/* parse_count - a count of 1 or more, in decimal. */
static int
parse_count(const char *arg, size_t *out)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(arg, &end, 10);
	if (errno != 0 || *end != '\0' || arg[0] < '0' || arg[0] > '9' ||
	    n == 0 || n > SIZE_MAX)
		return -EINVAL;
	*out = (size_t)n;
	return 0;
}

/* queue_row - a row of carepostctl queue, printed at once (streamed). */
static int
queue_row(void *ud, const struct delivery *d)
{
	size_t *rows = ud;

	if (json_output) {
		json_t *o = delivery_summary(d);
		char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;

		json_decref(o);
		if (text == NULL)
			return -ENOMEM;
		printf("%s%s", *rows > 0 ? ",\n" : "[\n", text);
		free(text);
	} else {
		printf("%-32s %-22s %-9s attempts=%lld due=%lld %s\n", d->id,
		       d->type ? d->type : "-", delivery_state_name(d->state),
		       d->attempts, (long long)d->due, d->reason ? d->reason : "");
	}
	(*rows)++;
	return ferror(stdout) ? -EIO : 0;
}

static int
cmd_queue(int argc, char **argv)
{
	struct runtime rt;
	struct cp_error err;
	size_t rows = 0, limit = 0;
	int r;

	if (argc == 2 && strcmp(argv[0], "--limit") == 0) {
		if (parse_count(argv[1], &limit) < 0)
			return fail(EX_USAGE, "queue: --limit wants a count of "
				    "1 or more, not \"%s\"", argv[1]);
	} else if (argc != 0) {
		return fail(EX_USAGE, "queue: the only option is --limit N");
	}
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	cp_error_clear(&err);
	r = queue_list(rt.store, limit, queue_row, &rows, &err);
	runtime_close(&rt);
	if (json_output)
		puts(rows > 0 ? "\n]" : "[]");
	if (r == -ENOMEM || r == -EIO)
		return fail(EX_IOERR, "queue: %s", r == -EIO ? "cannot write the listing"
			    : "out of memory");
	if (r < 0)
		return fail(EX_IOERR, "%s", err.text);
	return 0;
}

/*
 * inbound_stats - what the store says of the inbound side, and the keys
 * that expire within 30 days (-1 when GnuPG cannot tell).
 */
static json_t *
inbound_stats(struct runtime *rt, struct cp_error *err)
{
	json_t *o = json_object(), *t, *by_disposition = json_object();
	json_t *by_class = json_object(), *by_state = json_object();
	struct bounce_tally bt;
	struct pgp *p = NULL;
	size_t n = 0;
	long long expiring = -1;

	json_object_set_new(o, "ingested_by_disposition", by_disposition);
	json_object_set_new(o, "ingested_by_class", by_class);
	json_object_set_new(o, "clinic_queue", by_state);
	if (seen_tally(rt->store, by_disposition, by_class, err) < 0 ||
	    clinic_tally(rt->store, by_state, err) < 0)
		goto fail;
	if (bounce_tally(rt->store, &bt, err) < 0)
		goto fail;
	t = json_object();
	for (size_t i = 0; i < CP_ARRAY_SIZE(bt.by_state); i++)
		if (bt.by_state[i] > 0)
			json_object_set_new(t, bounce_state_name((enum bounce_state)i),
					    json_integer((json_int_t)bt.by_state[i]));
	json_object_set_new(o, "bounced_addresses", t);
	if (store_count(rt->store, DB_INBOX, &n, err) < 0)
		goto fail;
	json_object_set_new(o, "inbox_messages", json_integer((json_int_t)n));
	pgp_global_init();
	if (pgp_new(rt->cfg->gpg_home, NULL, &p, NULL) == 0 &&
	    pgp_keys_expiring(p, cp_now(), 30LL * 86400, &n, NULL) == 0)
		expiring = (long long)n;
	pgp_free(p);
	json_object_set_new(o, "keys_expiring_30d", json_integer(expiring));
	return o;
fail:
	json_decref(o);
	return NULL;
}

static void
print_counts(const char *title, json_t *counts)
{
	const char *k;
	json_t *v;

	printf("%s:", title);
	if (json_object_size(counts) == 0)
		printf(" none");
	json_object_foreach(counts, k, v)
		printf(" %s %lld", k, (long long)json_integer_value(v));
	putchar('\n');
}

/* state_counts - {"STATE": n} of the states that occur. */
static json_t *
state_counts(const struct queue_tally *t)
{
	json_t *o = json_object();

	for (size_t i = 0; i < CP_ARRAY_SIZE(t->by_state); i++)
		if (t->by_state[i] > 0)
			json_object_set_new(o, delivery_state_name((enum delivery_state)i),
					    json_integer((json_int_t)t->by_state[i]));
	return o;
}

static int
cmd_stats(void)
{
	struct runtime rt;
	struct cp_error err;
	struct queue_tally qt;
	json_t *counts = NULL, *in = NULL;
	struct store_usage use = { 0, 0, 0, 0 };
	size_t waiting = 0, scheduled = 0;
	int64_t oldest = INT64_MAX, age;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		goto out;
	r = queue_tally(rt.store, &qt, &err);
	if (r == 0)
		r = queue_oldest_pending(rt.store, &oldest, &err);
	if (r == 0)
		r = store_count(rt.store, DB_EVENTS, &waiting, &err);
	if (r == 0)
		r = store_count(rt.store, DB_SCHEDULE, &scheduled, &err);
	if (r == 0 && (in = inbound_stats(&rt, &err)) == NULL)
		r = -EIO;
	if (r == 0)
		r = store_usage(rt.store, &use, &err);
	runtime_close(&rt);
	if (r < 0) {
		r = fail(EX_IOERR, "%s", err.text);
		goto out;
	}
	age = oldest == INT64_MAX || oldest > cp_now() ? 0 : cp_now() - oldest;
	counts = state_counts(&qt);
	if (json_output) {
		json_t *o = json_pack("{s:O, s:i, s:i, s:I}", "states", counts,
				      "unclaimed", (int)waiting, "queue_depth", (int)scheduled,
				      "oldest_pending_age", (json_int_t)age);

		json_object_update(o, in);
		json_object_set_new(o, "store_pages", json_pack("{s:I, s:I, s:I, s:I}",
			"page_size", (json_int_t)use.page_size,
			"used", (json_int_t)use.used_pages,
			"file", (json_int_t)use.file_pages,
			"audit", (json_int_t)use.audit_pages));
		print_json(o);
		json_decref(o);
	} else {
		const char *k;
		json_t *v;

		printf("unclaimed events: %zu\nqueue depth:      %zu\n", waiting, scheduled);
		printf("oldest pending:   %llds\n", (long long)age);
		json_object_foreach(counts, k, v)
			printf("%-17s %lld\n", k, (long long)json_integer_value(v));
		print_counts("ingested", json_object_get(in, "ingested_by_class"));
		print_counts("dispositions", json_object_get(in, "ingested_by_disposition"));
		print_counts("bounced addresses", json_object_get(in, "bounced_addresses"));
		print_counts("clinic queue", json_object_get(in, "clinic_queue"));
		printf("inbox messages:   %lld\n", (long long)json_integer_value(
			json_object_get(in, "inbox_messages")));
		printf("keys expiring within 30 days: %lld\n", (long long)json_integer_value(
			json_object_get(in, "keys_expiring_30d")));
		printf("store pages:      %llu used (%llu of them the audit trail's), "
		       "%llu in the file (%llu bytes each)\n",
		       (unsigned long long)use.used_pages,
		       (unsigned long long)use.audit_pages,
		       (unsigned long long)use.file_pages,
		       (unsigned long long)use.page_size);
	}
out:
	json_decref(counts);
	json_decref(in);
	return r;
}

/*
 * cmd_unsubscribe - a one-click unsubscribe token the portal's endpoint
 * received (unsub.h): applied at once, audited as this user's; exit 0
 * when applied (or already so), 65 for a token carepost did not make,
 * 66 for one naming what is no longer stored or a recipient at another
 * address now.
 */
static int
cmd_unsubscribe(const char *token)
{
	struct unsub_result res;
	struct runtime rt;
	struct cp_error err;
	char actor[AUDIT_ACTOR_MAX + 1];
	int r;

	cp_error_clear(&err);
	if (audit_actor_ctl(actor, sizeof(actor), &err) < 0)
		return fail(EX_OSERR, "unsubscribe: %s", err.text);
	if ((r = open_rt(&rt, RUNTIME_KEY | RUNTIME_STORE)) != 0)
		return r;
	r = unsub_apply(rt.store, rt.key, rt.keylen, token, actor, &res, &err);
	runtime_close(&rt);
	if (r < 0)
		return fail(EX_IOERR, "unsubscribe: %s", err.text);
	if (json_output) {
		json_t *o = json_pack("{s:s}", "result", unsub_outcome_name(res.outcome));

		if (o != NULL && res.category[0])
			json_object_set_new(o, "category", json_string(res.category));
		if (o != NULL && res.patient[0]) {
			json_object_set_new(o, "patient", json_string(res.patient));
			json_object_set_new(o, "recipient", json_string(res.ref));
		}
		print_json_take(o);
	} else if (res.outcome == UNSUB_APPLIED || res.outcome == UNSUB_ALREADY) {
		printf("%s %s: %s %s\n", res.patient, res.ref, res.outcome ==
		       UNSUB_APPLIED ? "opted out of" : "had already opted out of",
		       res.category);
	}
	switch (res.outcome) {
	case UNSUB_APPLIED:
	case UNSUB_ALREADY:
		return 0;
	case UNSUB_FORGED:
		return fail(EX_DATAERR, "unsubscribe: not a token carepost made: "
			    "nothing changed");
	case UNSUB_STALE:
		return fail(EX_NOINPUT, "unsubscribe: the recipient is at another "
			    "address now: nothing changed");
	default:
		return fail(EX_NOINPUT, "unsubscribe: the message it names is no "
			    "longer stored: nothing changed");
	}
}

static int
cmd_retry(const char *id)
{
	struct runtime rt;
	struct cp_error err;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	r = queue_retry(rt.store, id, cp_now(), &err);
	runtime_close(&rt);
	if (r == -ENOENT)
		return fail(EX_NOINPUT, "%s: no such event", id);
	if (r == -EPERM)
		return fail(EX_DATAERR, "%s", err.text);
	if (r < 0)
		return fail(EX_IOERR, "%s", err.text);
	if (json_output)
		print_json_take(json_pack("{s:s, s:b}", "id", id, "queued", 1));
	else
		printf("event %s queued for retry\n", id);
	return 0;
}

static int
cmd_render(int argc, char **argv)
{
	_cleanup_free_ char *src = NULL, *data = NULL, *dircopy = NULL;
	struct tmpl_options opts = { .escape = TMPL_ESCAPE_HTML };
	_cleanup_buf_ struct buf out = BUF_INIT;
	struct cp_error err;
	const char *tfile = NULL, *dfile = NULL;
	size_t slen, dlen;
	json_t *ctx;
	int i, r;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--text") == 0)
			opts.escape = TMPL_ESCAPE_NONE;
		else if (tfile == NULL)
			tfile = argv[i];
		else if (dfile == NULL)
			dfile = argv[i];
		else
			return fail(EX_USAGE, "render: unexpected argument %s", argv[i]);
	}
	if (tfile == NULL || dfile == NULL)
		return fail(EX_USAGE, "render: TEMPLATE and DATA files are required");
	if ((r = cp_read_file(tfile, TMPL_MAX_SOURCE, &src, &slen)) < 0)
		return fail(EX_NOINPUT, "%s: %s", tfile, strerror(-r));
	if ((r = cp_read_file(dfile, EVENT_JSON_MAX, &data, &dlen)) < 0)
		return fail(EX_NOINPUT, "%s: %s", dfile, strerror(-r));
	if ((ctx = parse_json(data, dlen, dfile)) == NULL)
		return EX_DATAERR;
	dircopy = strdup(tfile);
	opts.partial = tmpl_dir_partial;
	opts.partial_userdata = dirname(dircopy);
	cp_error_clear(&err);
	r = tmpl_render_string(src, slen, ctx, &opts, &out, &err);
	json_decref(ctx);
	if (r < 0)
		return fail(EX_DATAERR, "%s: %s", tfile, err.text);
	fwrite(out.data ? out.data : "", 1, out.len, stdout);
	return 0;
}

/* ---- inbound ---- */

#define INGEST_MAX (INMSG_MAX_SIZE_DEFAULT + 1)

/*
 * open_for_dry_run - the config, and the token key and store when they
 * can be had without writing anything; otherwise NULL with the reason.
 */
static int
open_for_dry_run(struct runtime *rt, json_t *unavailable)
{
	struct cp_error err;
	char path[4096];
	int r;

	if ((r = open_rt(rt, 0)) != 0)
		return r;
	cp_error_clear(&err);
	if (runtime_load_key(rt, runtime_config_path(config_arg), &err) < 0)
		json_object_set_new(unavailable, "token_key", json_string(err.text));
	cp_error_clear(&err);
	if (cp_snprintf_ok(path, sizeof(path), "%s/data.mdb", rt->cfg->store_path) < 0 ||
	    access(path, R_OK | W_OK) != 0)
		json_object_set_new(unavailable, "store", json_string(
			"no store at the configured path (or not accessible)"));
	else if (storefmt_open(rt->cfg->store_path, rt->cfg->store_map_size, 0,
			       &rt->store, &err) < 0)
		json_object_set_new(unavailable, "store", json_string(err.text));
	return 0;
}

static int
cmd_ingest(int argc, char **argv)
{
	_cleanup_free_ char *raw = NULL;
	const char *file = NULL;
	struct inbound_result res;
	struct inbound *ib = NULL;
	struct runtime rt;
	struct cp_error err;
	json_t *unavailable = json_object();
	char actor[AUDIT_ACTOR_MAX + 1];
	int dry_run = 0, i, r, code = 0;
	size_t len;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0)
			dry_run = 1;
		else if (file == NULL)
			file = argv[i];
		else
			return fail(EX_USAGE, "ingest: unexpected argument %s", argv[i]);
	}
	if (file == NULL) {
		json_decref(unavailable);
		return fail(EX_USAGE, "ingest: a message file (or -) is required");
	}
	r = cp_read_file(strcmp(file, "-") == 0 ? "/dev/stdin" : file, INGEST_MAX, &raw, &len);
	if (r < 0) {
		json_decref(unavailable);
		return fail(r == -EFBIG ? EX_DATAERR : EX_NOINPUT, "%s: %s", file, strerror(-r));
	}
	r = dry_run ? open_for_dry_run(&rt, unavailable) : open_rt(&rt, RUNTIME_KEY | RUNTIME_STORE);
	if (r != 0) {
		json_decref(unavailable);
		return r;
	}
	cp_error_clear(&err);
	r = inbound_new(rt.cfg, rt.store, rt.keylen ? rt.key : NULL, rt.keylen, &ib, &err);
	if (r < 0) {
		runtime_close(&rt);
		json_decref(unavailable);
		return fail(EX_CONFIG, "%s", err.text);
	}
	if (audit_actor_ctl(actor, sizeof(actor), &err) < 0) {
		inbound_free(ib);
		runtime_close(&rt);
		json_decref(unavailable);
		return fail(EX_USAGE, "%s", err.text);
	}
	inbound_set_actor(ib, actor);	/* what it files is the user's doing */
	r = inbound_ingest(ib, raw, len, cp_now(), dry_run, &res, &err);
	inbound_free(ib);
	runtime_close(&rt);
	if (r < 0) {
		json_decref(unavailable);
		return fail(EX_TEMPFAIL, "ingest: %s (nothing written; try again)", err.text);
	}
	if (dry_run) {
		if (json_object_size(unavailable))
			json_object_set(res.summary, "unavailable", unavailable);
		print_json(res.summary);
		if (!json_is_true(json_object_get(res.summary, "parsed")))
			code = EX_DATAERR;
	} else if (json_output) {
		json_t *o = inbound_result_to_json(&res);

		print_json(o);
		json_decref(o);
	} else {
		printf("%s", inbound_disposition_name(res.disposition));
		if (res.inbox_id[0])
			printf(" %s", res.inbox_id);
		if (res.patient[0])
			printf(" patient=%s", res.patient);
		if (res.event[0])
			printf(" event=%s", res.event);
		printf(" folder=%s", inbound_folder_name(res.folder));
		if (res.reason[0])
			printf(": %s", res.reason);
		putchar('\n');
	}
	json_decref(unavailable);
	inbound_result_clear(&res);
	return code;
}

/*
 * open_pgp - a GPGME context on the configured home, for the store key,
 * and the inbox's data keys (unwrapped with it, once each).
 */
static int
open_pgp(struct runtime *rt, struct pgp **p, struct atrest **a)
{
	struct cp_error err;

	pgp_global_init();
	cp_error_clear(&err);
	if (pgp_new(rt->cfg->gpg_home, NULL, p, &err) < 0)
		return fail(EX_UNAVAILABLE, "%s", err.text);
	if (atrest_new(rt->store, *p, NULL, a, &err) < 0) {
		pgp_free(*p);
		*p = NULL;
		return fail(EX_UNAVAILABLE, "%s", err.text);
	}
	return 0;
}

static char *
preview(const char *text, size_t max)
{
	size_t n = 0, cut = 0;
	char *out;

	/* whole UTF-8 characters only, line breaks as spaces */
	while (text && text[n] && n < max) {
		n++;
		while ((text[n] & 0xC0) == 0x80)
			n++;
		cut = n;
	}
	out = strndup(text ? text : "", cut);
	for (char *c = out; c && *c; c++)
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	return out;
}

/* print_rows - rows as JSON, or a line each by print_row; drops rows. */
static int
print_rows(json_t *rows, void (*print_row)(json_t *row))
{
	json_t *e;
	size_t i;

	if (json_output)
		print_json(rows);
	else
		json_array_foreach(rows, i, e)
			print_row(e);
	json_decref(rows);
	return 0;
}

/* print_inbox_row - one inbox_row, for people. */
static void
print_inbox_row(json_t *row)
{
	struct inbox_entry e;
	struct inbox_row_view v;

	if (inbox_load(row, &e, NULL) < 0)
		return;
	inbox_row_view(row, &v);
	printf("%s  %lld  %-5s %s%s\n    %s%s\n", e.id ? e.id : "",
	       (long long)e.received, inbox_class_name(e.class),
	       e.urgent == 1 ? "URGENT " : "",
	       v.subject ? v.subject : v.error ? v.error : "",
	       v.preview ? v.preview : "", "");
	inbox_clear(&e);
}

static int
cmd_inbox(const char *patient, const char *reason)
{
	struct runtime rt;
	struct cp_error err;
	struct pgp *p = NULL;
	struct atrest *a = NULL;
	json_t *list, *rec, *rows = json_array();
	size_t i;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0) {
		json_decref(rows);
		return r;
	}
	cp_error_clear(&err);
	r = inbox_list(rt.store, patient, &list, &err);
	if (r < 0) {
		runtime_close(&rt);
		json_decref(rows);
		return fail(r == -EINVAL ? EX_USAGE : EX_IOERR, "%s", err.text);
	}
	if ((r = audit_access(rt.store, AUDIT_INBOX_LISTED, patient, NULL, NULL,
			      reason)) != 0) {
		runtime_close(&rt);
		json_decref(list);
		json_decref(rows);
		return r;
	}
	if (json_array_size(list) && (r = open_pgp(&rt, &p, &a)) != 0) {
		runtime_close(&rt);
		json_decref(list);
		json_decref(rows);
		return r;
	}
	json_array_foreach(list, i, rec) {
		json_t *full = NULL, *content = NULL;
		struct inbox_entry e;
		struct inbox_content c;

		cp_error_clear(&err);
		if (inbox_load(rec, &e, &err) == 0 &&
		    inbox_get(rt.store, patient, e.id ? e.id : "", &full, &err) == 0 &&
		    inbox_open(p, a, full, &content, &err) == 0 &&
		    inbox_content_load(content, &c, &err) == 0) {
			_cleanup_free_ char *pv = preview(c.text, 120);

			json_array_append_new(rows, inbox_row(rec, &c, pv, NULL));
			inbox_content_clear(&c);
		} else {
			json_array_append_new(rows, inbox_row(rec, NULL, NULL, err.text));
		}
		inbox_clear(&e);
		json_decref(full);
		json_decref(content);
	}
	atrest_free(a);
	pgp_free(p);
	runtime_close(&rt);
	json_decref(list);
	return print_rows(rows, print_inbox_row);
}

static int
cmd_read(const char *patient, const char *msg, const char *reason)
{
	struct runtime rt;
	struct cp_error err;
	struct pgp *p = NULL;
	struct atrest *a = NULL;
	struct inbox_entry e;
	struct inbox_content c = { 0 };
	json_t *rec, *content, *out;
	size_t i;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	cp_error_clear(&err);
	r = inbox_get(rt.store, patient, msg, &rec, &err);
	if (r < 0) {
		runtime_close(&rt);
		return fail(r == -ENOENT ? EX_NOINPUT : r == -EINVAL ? EX_USAGE : EX_IOERR,
			    "%s %s: %s", patient, msg, r == -ENOENT ? "no such message" : err.text);
	}
	if ((r = audit_access(rt.store, AUDIT_READ, patient, msg, NULL, reason)) != 0) {
		json_decref(rec);
		runtime_close(&rt);
		return r;
	}
	if ((r = open_pgp(&rt, &p, &a)) != 0) {
		json_decref(rec);
		runtime_close(&rt);
		return r;
	}
	r = inbox_open(p, a, rec, &content, &err);
	atrest_free(a);
	pgp_free(p);
	runtime_close(&rt);
	if (r < 0) {
		json_decref(rec);
		return fail(EX_UNAVAILABLE, "%s %s: %s", patient, msg, err.text);
	}
	r = inbox_load(rec, &e, &err);
	if (r == 0)
		r = inbox_content_load(content, &c, &err);
	if (r < 0) {
		inbox_clear(&e);
		json_decref(rec);
		json_decref(content);
		return fail(EX_DATAERR, "%s %s: %s", patient, msg, err.text);
	}
	if (json_output) {
		out = json_pack("{s:o, s:o}", "record", inbox_dump(&e),
				"content", inbox_content_public(content));
		print_json(out);
		json_decref(out);
	} else {
		const char *k;
		json_t *v;

		printf("message:  %s\nreceived: %lld\nclass:    %s%s\nfrom:     %s\n"
		       "subject:  %s\n\n%s\n", e.id ? e.id : "", (long long)e.received,
		       inbox_class_name(e.class), e.urgent == 1 ? " (urgent)" : "",
		       c.from ? c.from : "", c.subject ? c.subject : "", c.text ? c.text : "");
		if (c.has_form) {
			printf("\nform fields:\n");
			json_object_foreach(c.form_values, k, v)
				printf("  %s: %s\n", k, json_string_value(v) ?: "");
			json_array_foreach(c.form_missing, i, v)
				printf("  %s: (missing, required)\n", json_string_value(v) ?: "");
		}
		if (c.natts) {
			printf("\nattachments:\n");
			for (i = 0; i < c.natts; i++)
				printf("  %s (%s, %lld bytes)\n",
				       c.atts[i].filename ? c.atts[i].filename : "-",
				       c.atts[i].content_type ? c.atts[i].content_type : "",
				       c.atts[i].size);
		}
	}
	inbox_content_clear(&c);
	inbox_clear(&e);
	json_decref(rec);
	json_decref(content);
	return 0;
}

/*
 * A listing from the store: list (given arg) hands out an array, shown as
 * JSON or a row at a time by print_row.
 */
typedef int (*listing_fn)(struct store *s, const char *arg, json_t **out,
			  struct cp_error *err);

static int
cmd_listing(listing_fn list, const char *arg, void (*print_row)(json_t *row))
{
	struct runtime rt;
	struct cp_error err;
	json_t *rows;
	int r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	cp_error_clear(&err);
	r = list(rt.store, arg, &rows, &err);
	runtime_close(&rt);
	if (r < 0)
		return fail(r == -EINVAL ? EX_USAGE : EX_IOERR, "%s", err.text);
	return print_rows(rows, print_row);
}

/* print_clinic_entry - one line of "clinic-queue". */
static void
print_clinic_entry(json_t *row)
{
	struct clinic_entry c;

	if (clinic_load(row, &c, NULL) < 0)
		return;
	printf("%-12s %s  %lld  patient=%s event=%s %s %s%s",
	       c.department ? c.department : "", c.inbox_id ? c.inbox_id : "",
	       (long long)c.received, c.patient ? c.patient : "",
	       c.event ? c.event : "", inbox_class_name(c.class),
	       c.state ? c.state : "", c.urgent == 1 ? " URGENT" : "");
	if (c.class == INBOX_COMPLAINT)
		printf(" type=%s feedback=%s opted_out=%s", c.event_type ? c.event_type : "",
		       c.feedback_type ? c.feedback_type : "",
		       c.opted_out ? c.opted_out : "-");
	putchar('\n');
	clinic_clear(&c);
}

struct page_out {
	size_t rows;
};

/* clinic_row_out - a row of clinic-queue, printed at once (streamed). */
static int
clinic_row_out(void *ud, json_t *row)
{
	struct page_out *po = ud;

	if (json_output) {
		char *text = json_dumps(row, JSON_INDENT(2) | JSON_SORT_KEYS);

		if (text == NULL)
			return -ENOMEM;
		printf("%s%s", po->rows > 0 ? ",\n" : "[\n", text);
		free(text);
	} else {
		print_clinic_entry(row);
	}
	po->rows++;
	return ferror(stdout) ? -EIO : 0;
}

/* cmd_clinic_queue - [DEPT] [--limit N] [--after DEPT/INBOX_ID]. */
static int
cmd_clinic_queue(int argc, char **argv)
{
	const char *dept = NULL, *after = NULL;
	struct page_out po = { 0 };
	struct runtime rt;
	struct cp_error err;
	size_t limit = 0;
	int i, r;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			if (parse_count(argv[++i], &limit) < 0)
				return fail(EX_USAGE, "clinic-queue: --limit wants a "
					    "count of 1 or more, not \"%s\"", argv[i]);
		} else if (strcmp(argv[i], "--after") == 0 && i + 1 < argc) {
			after = argv[++i];
		} else if (argv[i][0] != '-' && dept == NULL) {
			dept = argv[i];
		} else {
			return fail(EX_USAGE, "clinic-queue: unexpected argument %s",
				    argv[i]);
		}
	}
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	cp_error_clear(&err);
	r = inbox_clinic_page(rt.store, dept, after, limit, clinic_row_out, &po, &err);
	runtime_close(&rt);
	if (json_output && r != -EINVAL)
		puts(po.rows > 0 ? "\n]" : "[]");
	if (r == -EINVAL)
		return fail(EX_USAGE, "clinic-queue: %s", err.text);
	if (r == -ENOMEM || r == -EIO)
		return fail(EX_IOERR, "clinic-queue: %s", r == -EIO ?
			    "cannot write the listing" : "out of memory");
	if (r < 0)
		return fail(EX_IOERR, "%s", err.text);
	return 0;
}

/* print_quarantined - one line of "quarantine": when, where, why. */
static void
print_quarantined(json_t *row)
{
	struct seen_record sr;
	char when[32] = "-";
	struct tm tm;
	time_t at;

	if (seen_load(row, &sr, NULL) < 0)
		return;
	at = sr.at;
	if (gmtime_r(&at, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s", when);
	if (sr.uid > 0)
		printf("  %s uid=%lld uidvalidity=%lld", sr.mailbox ? sr.mailbox : "-",
		       sr.uid, sr.uidvalidity);
	printf("  message-id=%s%s%s", sr.message_id ? "<" : "",
	       sr.message_id ? sr.message_id : "-", sr.message_id ? ">" : "");
	if (sr.event)
		printf("  event=%s", sr.event);
	printf("  %s  %s\n", sr.class ? sr.class : "-", sr.reason ? sr.reason : "");
	seen_clear(&sr);
}

static int
list_quarantine(struct store *s, const char *arg, json_t **out,
		struct cp_error *err)
{
	return inbox_quarantine(s, out, err);
}

/* ---- backup ---- */

/*
 * backup_error - a store_backup failure: EX_CANTCREAT for what is wrong
 * with DIR (not empty, not a directory, cannot be made or written),
 * EX_IOERR for the store.
 */
static int
backup_error(const struct cp_error *err)
{
	switch (err->code) {
	case -ENOTEMPTY: case -EEXIST: case -ENOTDIR: case -EACCES: case -EPERM:
	case -EROFS: case -ENOENT: case -ENAMETOOLONG: case -ENOSPC: case -EDQUOT:
		return fail(EX_CANTCREAT, "backup: %s", err->text);
	default:
		return fail(EX_IOERR, "backup: %s", err->text);
	}
}

static int
cmd_backup(const char *dir)
{
	struct store_scrub_result scrub;
	struct store_backup_result res;
	struct runtime rt;
	struct cp_error err;
	char path[4096];
	unsigned version = 0;
	int r;

	if ((r = open_rt(&rt, 0)) != 0)
		return r;
	/* A backup never makes a store: an empty copy would look like one. */
	if (cp_snprintf_ok(path, sizeof(path), "%s/data.mdb", rt.cfg->store_path) < 0 ||
	    access(path, R_OK) != 0) {
		r = fail(EX_NOINPUT, "backup: no store at %s (%s): nothing to back up",
			 rt.cfg->store_path, strerror(errno));
		runtime_close(&rt);
		return r;
	}
	cp_error_clear(&err);
	r = storefmt_open(rt.cfg->store_path, rt.cfg->store_map_size,
			  STOREFMT_OLDER_OK, &rt.store, &err);
	if (r < 0) {
		runtime_close(&rt);
		return fail(r == -EPROTO || r == -EBADMSG ? EX_DATAERR : EX_IOERR,
			    "backup: %s", err.text);
	}
	r = storefmt_version(rt.store, &version, NULL, &err);
	/* Scrubbed first (this process's LMDB environment is fresh): the copy
	 * takes every live page whole, and no page then keeps what a freed
	 * record or a recycled page buffer left in it. */
	if (r == 0 && store_scrub(rt.store, 0, &scrub, &err) < 0) {
		/* a full map or disk: the backup matters more, on the store
		 * opened again (a scrub that failed may have closed it) */
		fprintf(stderr, "carepostctl: backup: the store could not be "
			"scrubbed first (%s): the copy may hold bytes of freed "
			"records\n", err.text);
		cp_error_clear(&err);
		store_close(rt.store);
		rt.store = NULL;
		r = storefmt_open(rt.cfg->store_path, rt.cfg->store_map_size,
				  STOREFMT_OLDER_OK, &rt.store, &err);
	}
	if (r == 0)
		r = store_backup(rt.store, dir, &res, &err);
	if (r < 0) {
		runtime_close(&rt);
		return backup_error(&err);
	}
	if (json_output)
		print_json_take(json_pack("{s:s, s:s, s:I, s:I, s:i, s:b}",
			"dir", dir, "store", rt.cfg->store_path,
			"data_bytes", (json_int_t)res.data_bytes,
			"journal_lines", (json_int_t)res.journal_lines,
			"store_format", (int)version, "keys_included", 0));
	else
		printf("backup of %s in %s: data.mdb %llu bytes (compacted), "
		       "sending.journal %zu lines, store format version %u\n"
		       "no keys in it: back up the token key, the GnuPG home and "
		       "the store key apart\n", rt.cfg->store_path, dir,
		       (unsigned long long)res.data_bytes, res.journal_lines, version);
	runtime_close(&rt);
	return 0;
}

/* cmd_prune - one retention pass now (lib/retain), or its dry run. */
static int
cmd_prune(int argc, char **argv)
{
	struct retain_policy pol;
	struct retain_counts c;
	struct runtime rt;
	struct cp_error err;
	int dry = 0, r;

	if (argc == 2 && strcmp(argv[1], "--dry-run") == 0)
		dry = 1;
	else if (argc != 1)
		return fail(EX_USAGE, "usage: prune [--dry-run]");
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	retain_policy_from_config(rt.cfg, &pol);
	cp_error_clear(&err);
	r = audit_actor_ctl(pol.actor, sizeof(pol.actor), &err);
	if (r == 0)
		r = retain_run(rt.store, &pol, cp_now(), dry, &c, &err);
	runtime_close(&rt);
	if (r < 0)
		return fail(EX_IOERR, "prune: %s", err.text);
	if (json_output) {
		print_json_take(retain_counts_json(&c, dry));
		return 0;
	}
	printf("looked at %zu records in %zu transactions (%zu unreadable, "
	       "kept); %s:", c.examined, c.transactions, c.unreadable,
	       dry ? "would prune" : "pruned");
	for (size_t i = 0; i < RETAIN__COUNT; i++)
		printf(" %s %zu", retain_kind_name((enum retain_kind)i), c.pruned[i]);
	putchar('\n');
	return 0;
}

/* cmd_scrub - overwrite the store file's free pages (store_scrub). */
static int
cmd_scrub(int argc, char **argv)
{
	struct store_scrub_result res;
	struct runtime rt;
	struct cp_error err;
	int r;

	(void)argv;
	if (argc != 1)
		return fail(EX_USAGE, "usage: scrub");
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	cp_error_clear(&err);
	r = store_scrub(rt.store, 0, &res, &err);
	runtime_close(&rt);
	if (r < 0)
		return fail(EX_IOERR, "scrub: %s", err.text);
	if (json_output) {
		print_json_take(json_pack("{s:I, s:I, s:I, s:i}",
			"rewritten", (json_int_t)res.rewritten,
			"overwritten", (json_int_t)res.overwritten,
			"held", (json_int_t)res.held,
			"transactions", (int)res.transactions));
		return 0;
	}
	printf("rewrote %llu records on clean pages, overwrote %llu free pages "
	       "with zeros, in %u transactions; %llu free pages held for a "
	       "reader (the next scrub)\n", (unsigned long long)res.rewritten,
	       (unsigned long long)res.overwritten, res.transactions,
	       (unsigned long long)res.held);
	return 0;
}

/* audit_time - epoch seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC). */
static int
audit_time(const char *arg, int64_t *out)
{
	struct tm tm;
	const char *end;
	char *e;
	long long n;

	errno = 0;
	n = strtoll(arg, &e, 10);
	if (*arg != '\0' && *e == '\0' && errno == 0 && n >= 0) {
		*out = n;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(arg, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0') {
		memset(&tm, 0, sizeof(tm));
		end = strptime(arg, "%Y-%m-%d", &tm);
	}
	if (end == NULL || *end != '\0')
		return -EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/*
 * verify_checkpoints - the signed checkpoints of file (the configured one
 * by default) against the trail, when [audit] checkpoint_key is set:
 * 0 and *res, 1 when checkpoints are off, or the exit code of a failure.
 */
static int
verify_checkpoints(struct runtime *rt, const char *file,
		   struct checkpoint_result *res, struct cp_error *err)
{
	const struct cp_config *cfg = rt->cfg;
	struct pgp *p = NULL;
	int r;

	if (cfg->audit_checkpoint_key == NULL)
		return 1;
	pgp_global_init();
	if (pgp_new(cfg->gpg_home, NULL, &p, err) < 0)
		return -EIO;
	r = checkpoint_verify(rt->store, p, cfg->audit_checkpoint_key,
			      file ? file : cfg->audit_checkpoint_file, res, err);
	pgp_free(p);
	return r;
}

static int
cmd_audit_verify(int argc, char **argv)
{
	struct audit_verify_result vr;
	struct checkpoint_result cr;
	const char *file = NULL;
	struct runtime rt;
	struct cp_error err;
	int r, cp;

	if (argc == 2 && strcmp(argv[0], "--checkpoints") == 0)
		file = argv[1];
	else if (argc != 0)
		return fail(EX_USAGE, "audit verify: the only option is "
			    "--checkpoints FILE");
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	cp_error_clear(&err);
	r = audit_verify(rt.store, &vr, &err);
	memset(&cr, 0, sizeof(cr));
	cp = r < 0 ? 1 : verify_checkpoints(&rt, file, &cr, &err);
	runtime_close(&rt);
	if (r < 0 || cp < 0)
		return fail(EX_IOERR, "audit verify: %s", err.text);
	if (json_output) {
		json_t *o = json_pack("{s:b, s:I, s:I, s:I}", "intact", vr.ok,
				      "records", (json_int_t)vr.records,
				      "first_seq", (json_int_t)vr.first,
				      "last_seq", (json_int_t)vr.last);

		if (o != NULL && !vr.ok) {
			json_object_set_new(o, "bad_seq", json_integer((json_int_t)vr.bad_seq));
			json_object_set_new(o, "problem", json_string(vr.why));
		}
		if (o != NULL && cp == 0) {
			json_t *c = json_pack("{s:b, s:I, s:I, s:I}", "intact", cr.ok,
					      "checked", (json_int_t)cr.checked,
					      "last_seq", (json_int_t)cr.last_seq,
					      "last_time", (json_int_t)cr.last_time);

			if (c != NULL && !cr.ok)
				json_object_set_new(c, "problem", json_string(cr.why));
			json_object_set_new(o, "checkpoints", c);
		}
		print_json_take(o);
	} else {
		if (vr.ok)
			printf("audit trail intact: %llu records (%llu to %llu)\n",
			       (unsigned long long)vr.records,
			       (unsigned long long)vr.first,
			       (unsigned long long)vr.last);
		if (cp == 0 && cr.ok)
			printf("checkpoints: %u signed, each names a record of the "
			       "trail as it is%s\n", cr.checked,
			       cr.checked ? "" : " (none made yet)");
		else if (cp == 1)
			printf("checkpoints: off ([audit] checkpoint_key not set)\n");
	}
	if (!vr.ok)
		return fail(EX_DATAERR, "audit verify: record %llu: %s (%llu "
			    "records before it hold)", (unsigned long long)vr.bad_seq,
			    vr.why, (unsigned long long)vr.records);
	if (cp == 0 && !cr.ok)
		return fail(EX_DATAERR, "audit verify: checkpoints: %s", cr.why);
	return 0;
}

/* cmd_audit_checkpoint - a signed checkpoint now, as carepostd makes them. */
static int
cmd_audit_checkpoint(void)
{
	struct runtime rt;
	struct cp_error err;
	struct pgp *p = NULL;
	uint64_t seq = 0;
	int made = 0, r;

	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	if (rt.cfg->audit_checkpoint_key == NULL) {
		runtime_close(&rt);
		return fail(EX_CONFIG, "audit checkpoint: [audit] checkpoint_key "
			    "is not set");
	}
	cp_error_clear(&err);
	pgp_global_init();
	r = pgp_new(rt.cfg->gpg_home, rt.cfg->audit_checkpoint_key, &p, &err);
	if (r == 0)
		r = checkpoint_write(rt.store, p, rt.cfg->audit_checkpoint_file,
				     cp_now(), &made, &seq, &err);
	pgp_free(p);
	if (r < 0) {
		runtime_close(&rt);
		return fail(EX_IOERR, "audit checkpoint: %s", err.text);
	}
	if (json_output)
		print_json_take(json_pack("{s:b, s:I, s:s}", "made", made,
					  "seq", (json_int_t)seq, "file",
					  rt.cfg->audit_checkpoint_file));
	else if (made)
		printf("checkpoint of record %llu signed into %s\n",
		       (unsigned long long)seq, rt.cfg->audit_checkpoint_file);
	else
		printf("no checkpoint needed: the trail is empty or unchanged "
		       "since the last one\n");
	runtime_close(&rt);
	return 0;
}

static int
cmd_audit_export(int argc, char **argv)
{
	struct audit_filter f = { NULL, 0, 0 };
	const char *reason = NULL;
	struct runtime rt;
	struct cp_error err;
	uint64_t n = 0;
	int i, r;

	for (i = 0; i < argc; i++) {
		if (i + 1 >= argc)
			return fail(EX_USAGE, "audit export: %s: a value is required",
				    argv[i]);
		if (strcmp(argv[i], "--patient") == 0)
			f.patient = argv[++i];
		else if (strcmp(argv[i], "--since") == 0 && audit_time(argv[i + 1], &f.since) == 0)
			i++;
		else if (strcmp(argv[i], "--until") == 0 && audit_time(argv[i + 1], &f.until) == 0)
			i++;
		else if (strcmp(argv[i], "--reason") == 0)
			reason = argv[++i];
		else
			return fail(EX_USAGE, "audit export: %s %s: expected --patient ID, "
				    "--since T, --until T (T: epoch seconds, YYYY-MM-DD or "
				    "YYYY-MM-DDTHH:MM:SSZ) or --reason TEXT", argv[i],
				    argv[i + 1]);
	}
	cp_error_clear(&err);
	if (audit_reason_check(reason, &err) < 0)
		return fail(EX_USAGE, "--%s", err.text);
	if ((r = open_rt(&rt, RUNTIME_STORE)) != 0)
		return r;
	/* The export is an access too: recorded before anything is written. */
	if ((r = audit_access(rt.store, AUDIT_EXPORTED, f.patient, NULL, NULL,
			      reason)) != 0) {
		runtime_close(&rt);
		return r;
	}
	r = audit_export(rt.store, &f, stdout, &n, &err);
	runtime_close(&rt);
	if (r < 0)
		return fail(EX_IOERR, "audit export: %s", err.text);
	if (fflush(stdout) != 0)
		return fail(EX_IOERR, "audit export: %s", strerror(errno));
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd, *sub;
	int c, rc;

	/* Started as its own gpg or parse helper (lib/pgphelper,
	 * lib/parsehelper): nothing else. */
	rc = pgpserve_main(argc, argv);
	if (rc >= 0)
		return rc;
	rc = parsehelper_main(argc, argv);
	if (rc >= 0)
		return rc;
	/* It reads inboxes and renders results: no core file of that. */
	if (cp_no_core_dumps() < 0) {
		fprintf(stderr, "carepostctl: cannot disable core dumps: %s\n",
			strerror(errno));
		return EX_OSERR;
	}
	while ((c = getopt_long(argc, argv, "+c:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config_arg = optarg; break;
		case 'j': json_output = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': puts("carepostctl " CAREPOST_VERSION); return 0;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	log_setup("carepostctl", LOG_TARGET_STDERR, LOG_WARNING);
	/* ingest decrypts outside data in helpers only (pgp_confine). */
	rc = pgphelper_enable("carepost-pgp");
	if (rc < 0)
		log_warning("gpg helper unavailable (%s): encrypted mail cannot "
			    "be ingested", strerror(-rc));
	/* ingest parses outside data in the parse helper only. */
	rc = parsehelper_enable("carepost-parse");
	if (rc < 0)
		log_warning("parse helper unavailable (%s): mail cannot be "
			    "ingested", strerror(-rc));
	cmd = argv[optind];
	sub = optind + 1 < argc ? argv[optind + 1] : NULL;
	argc -= optind;
	argv += optind;

	if (strcmp(cmd, "patient") == 0 && sub && strcmp(sub, "add") == 0 && argc <= 3)
		return cmd_patient_add(argc == 3 ? argv[2] : NULL);
	if (strcmp(cmd, "patient") == 0 && sub && strcmp(sub, "show") == 0 && argc == 3)
		return cmd_patient_show(argv[2]);
	if (strcmp(cmd, "patient") == 0 && sub && strcmp(sub, "list") == 0 && argc == 2)
		return cmd_patient_list();
	if (strcmp(cmd, "key") == 0 && sub && strcmp(sub, "import") == 0)
		return cmd_key_import(argc - 2, argv + 2);
	if (strcmp(cmd, "key") == 0 && sub && strcmp(sub, "sync") == 0)
		return cmd_key_sync(argc - 2, argv + 2);
	if (strcmp(cmd, "event") == 0 && sub && strcmp(sub, "add") == 0 && argc <= 3)
		return cmd_event_add(argc == 3 ? argv[2] : NULL);
	if (strcmp(cmd, "queue") == 0)
		return cmd_queue(argc - 1, argv + 1);
	if (strcmp(cmd, "stats") == 0 && argc == 1)
		return cmd_stats();
	if (strcmp(cmd, "status") == 0 && argc == 2)
		return cmd_status(argv[1]);
	if (strcmp(cmd, "retry") == 0 && argc == 2)
		return cmd_retry(argv[1]);
	if (strcmp(cmd, "unsubscribe") == 0 && argc == 2)
		return cmd_unsubscribe(argv[1]);
	if (strcmp(cmd, "wake") == 0 && argc == 1)
		return cmd_wake();
	if (strcmp(cmd, "keys") == 0 && argc == 1)
		return cmd_keys();
	if (strcmp(cmd, "render") == 0)
		return cmd_render(argc - 1, argv + 1);
	if (strcmp(cmd, "ingest") == 0)
		return cmd_ingest(argc - 1, argv + 1);
	if (strcmp(cmd, "inbox") == 0 || strcmp(cmd, "read") == 0) {
		const char *reason;
		int n = take_reason(argc - 1, argv + 1, &reason);

		if (n < 0)
			return EX_USAGE;
		if (strcmp(cmd, "inbox") == 0 && n == 1)
			return cmd_inbox(argv[1], reason);
		if (strcmp(cmd, "read") == 0 && n == 2)
			return cmd_read(argv[1], argv[2], reason);
	}
	if (strcmp(cmd, "audit") == 0 && sub && strcmp(sub, "verify") == 0)
		return cmd_audit_verify(argc - 2, argv + 2);
	if (strcmp(cmd, "audit") == 0 && sub && strcmp(sub, "checkpoint") == 0 && argc == 2)
		return cmd_audit_checkpoint();
	if (strcmp(cmd, "audit") == 0 && sub && strcmp(sub, "export") == 0)
		return cmd_audit_export(argc - 2, argv + 2);
	if (strcmp(cmd, "backup") == 0 && argc == 2)
		return cmd_backup(argv[1]);
	if (strcmp(cmd, "clinic-queue") == 0)
		return cmd_clinic_queue(argc - 1, argv + 1);
	if (strcmp(cmd, "prune") == 0)
		return cmd_prune(argc, argv);
	if (strcmp(cmd, "scrub") == 0)
		return cmd_scrub(argc, argv);
	if (strcmp(cmd, "quarantine") == 0 && argc == 1)
		return cmd_listing(list_quarantine, NULL, print_quarantined);
	usage(stderr);
	return EX_USAGE;
}
