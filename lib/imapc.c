/*
 * imapc - the IMAP client of the inbound side, over libetpan.
 *
 * The contract is in imapc.h. Notes on libetpan 1.9.4 (Debian's GnuTLS
 * build) that shaped this file:
 *
 *	- mailstream_ssl_set_server_certicate() is "not implemented" with
 *	  GnuTLS and the handshake never checks the peer: we take the chain
 *	  the handshake presented (mailstream_get_certificate_chain) and
 *	  verify it with OpenSSL before LOGIN. The handshake itself proved
 *	  that the server holds the leaf's key.
 *	- The capability list libetpan keeps is the one of the last
 *	  CAPABILITY answer: Dovecot offers MOVE and UIDPLUS only after
 *	  login, and what a server said before STARTTLS must be forgotten,
 *	  so CAPABILITY is asked again after each.
 *	- mailimap_idle() throws away untagged data that arrives before the
 *	  "+" continuation, and libetpan never lowers sel_exists on EXPUNGE.
 *	  imapc_idle_begin therefore sets sel_exists/sel_recent to a
 *	  sentinel before IDLE and imapc_idle_end sees any EXISTS/RECENT as
 *	  a change of it; an EXISTS lost before the "+" costs at most one
 *	  renewal of the IDLE of latency.
 *	- After mailimap_idle() the "+" line may share a read with the next
 *	  lines: imapc_idle_begin says when bytes are already in the
 *	  mailstream buffer, which poll(2) on the socket would not see.
 *	- UID SEARCH/FETCH "N:*" always include the highest UID, even when it
 *	  is below N: results are filtered.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <time.h>

#include <libetpan/libetpan.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "imapc.h"

#define IMAPC_DEFAULT_TIMEOUT	60
#define IMAPC_FOLDER_MAX	200
#define IMAPC_SENTINEL		UINT32_MAX

struct imapc {
	mailimap *imap;
	char *host;
	char delimiter;			/* hierarchy delimiter, 0: none */
	uint32_t uidvalidity;
	size_t max_size;
	bool broken;			/* stream failed: no LOGOUT */
	bool idling;			/* IDLE sent, DONE not yet */
	uint32_t *uids;			/* the last UID SEARCH's answer */
	size_t nuids, next;		/* ... and how much of it is taken */
};

/* --- errors --------------------------------------------------------- */

/* The server's last response text, printable ASCII only, shortened. */
static void
server_text(const struct imapc *c, char *out, size_t size)
{
	const char *s = c && c->imap ? c->imap->imap_response : NULL;
	size_t i = 0;

	if (s == NULL || *s == '\0') {
		cp_strlcpy(out, "no response text", size);
		return;
	}
	for (; *s != '\0' && i + 1 < size && i < 120; s++)
		out[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	out[i] = '\0';
}

/* Map a libetpan result of step to our code and a PHI-free reason. */
static int
etpan_fail(struct imapc *c, int r, const char *step, struct cp_error *err)
{
	char text[128];

	if (c != NULL &&
	    (r == MAILIMAP_ERROR_STREAM || r == MAILIMAP_ERROR_PARSE))
		c->broken = true;
	switch (r) {
	case MAILIMAP_ERROR_STREAM:
		return cp_error_set(err, -EIO, "IMAP %s failed: connection "
				    "lost or timed out", step);
	case MAILIMAP_ERROR_PARSE:
		return cp_error_set(err, -EIO, "IMAP %s failed: unparsable "
				    "server response", step);
	case MAILIMAP_ERROR_MEMORY:
		return cp_error_set(err, -ENOMEM, "IMAP %s failed: out of "
				    "memory", step);
	case MAILIMAP_ERROR_CONNECTION_REFUSED:
		return cp_error_set(err, -ECONNREFUSED, "IMAP %s failed: "
				    "cannot connect to %s", step,
				    c ? c->host : "server");
	case MAILIMAP_ERROR_SSL:
		return cp_error_set(err, -EPROTO, "IMAP %s failed: TLS "
				    "handshake failed", step);
	case MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION:
		server_text(c, text, sizeof(text));
		return cp_error_set(err, -EPROTO, "IMAP %s failed: server "
				    "refused the session: %s", step, text);
	case MAILIMAP_ERROR_LOGIN:
		server_text(c, text, sizeof(text));
		return cp_error_set(err, -EACCES, "IMAP %s failed: %s", step,
				    text);
	default:
		server_text(c, text, sizeof(text));
		return cp_error_set(err, -EPROTO, "IMAP %s failed (libetpan "
				    "error %d): %s", step, r, text);
	}
}

/* --- names and hosts ------------------------------------------------ */

static bool
host_is_ip(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	       inet_pton(AF_INET6, host, &a6) == 1;
}

static bool
host_is_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (strcasecmp(host, "localhost") == 0 ||
	    strcasecmp(host, "localhost.") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

static int
folder_check(const char *what, const char *name, struct cp_error *err)
{
	const char *p;

	if (name == NULL || *name == '\0')
		return cp_error_set(err, -EINVAL, "IMAP: %s is empty", what);
	if (strlen(name) > IMAPC_FOLDER_MAX)
		return cp_error_set(err, -EINVAL, "IMAP: %s is longer than %d "
				    "bytes", what, IMAPC_FOLDER_MAX);
	for (p = name; *p != '\0'; p++) {
		if (*p < 0x20 || *p >= 0x7f || strchr("\"\\%*", *p) != NULL)
			return cp_error_set(err, -EINVAL, "IMAP: %s must be "
					    "printable ASCII without \" \\ %% *",
					    what);
	}
	if (name[0] == '/' || name[strlen(name) - 1] == '/' ||
	    strstr(name, "//") != NULL)
		return cp_error_set(err, -EINVAL, "IMAP: %s has an empty "
				    "level", what);
	return 0;
}

/* The name on the server: '/' becomes the hierarchy delimiter. Caller frees. */
static char *
folder_on_server(const struct imapc *c, const char *name)
{
	char *s = strdup(name), *p;

	if (s == NULL || c->delimiter == '\0' || c->delimiter == '/')
		return s;
	for (p = s; *p != '\0'; p++)
		if (*p == '/')
			*p = c->delimiter;
	return s;
}

/* --- TLS ------------------------------------------------------------ */

static void
tls_setup(struct mailstream_ssl_context *ctx, void *data)
{
	struct imapc *c = data;

	if (!host_is_ip(c->host))
		(void)mailstream_ssl_set_server_name(ctx, c->host);
}

static void
x509_stack_free(STACK_OF(X509) *sk)
{
	sk_X509_pop_free(sk, X509_free);
}

/*
 * Verify the chain the server presented against ca_file (or the system
 * store), for host, as a TLS server certificate.
 */
static int
tls_verify(struct imapc *c, const char *ca_file, struct cp_error *err)
{
	carray *chain = mailstream_get_certificate_chain(c->imap->imap_stream);
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	X509_VERIFY_PARAM *vp;
	X509 *leaf = NULL;
	unsigned int i;
	int r = 0, code;

	if (chain == NULL || carray_count(chain) == 0) {
		r = cp_error_set(err, -EPERM, "IMAP TLS: %s presented no "
				 "certificate", c->host);
		goto out;
	}
	untrusted = sk_X509_new_null();
	if (untrusted == NULL) {
		r = cp_error_set(err, -ENOMEM, "IMAP TLS: out of memory");
		goto out;
	}
	for (i = 0; i < carray_count(chain); i++) {
		MMAPString *der = carray_get(chain, i);
		const unsigned char *p = (const unsigned char *)der->str;
		X509 *x = d2i_X509(NULL, &p, (long)der->len);

		if (x == NULL) {
			r = cp_error_set(err, -EPERM, "IMAP TLS: certificate "
					 "%u from %s does not parse", i, c->host);
			goto out;
		}
		if (i == 0)
			leaf = x;
		else if (sk_X509_push(untrusted, x) == 0) {
			X509_free(x);
			r = cp_error_set(err, -ENOMEM, "IMAP TLS: out of memory");
			goto out;
		}
	}
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (store == NULL || ctx == NULL) {
		r = cp_error_set(err, -ENOMEM, "IMAP TLS: out of memory");
		goto out;
	}
	if (ca_file != NULL ? X509_STORE_load_file(store, ca_file) != 1
			    : X509_STORE_set_default_paths(store) != 1) {
		r = cp_error_set(err, -EINVAL, "IMAP TLS: cannot load %s",
				 ca_file ? ca_file : "the system trust store");
		goto out;
	}
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		r = cp_error_set(err, -ENOMEM, "IMAP TLS: out of memory");
		goto out;
	}
	vp = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_purpose(vp, X509_PURPOSE_SSL_SERVER);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (host_is_ip(c->host) ? X509_VERIFY_PARAM_set1_ip_asc(vp, c->host) != 1
				: X509_VERIFY_PARAM_set1_host(vp, c->host, 0) != 1) {
		r = cp_error_set(err, -ENOMEM, "IMAP TLS: out of memory");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		code = X509_STORE_CTX_get_error(ctx);
		r = cp_error_set(err, -EPERM, "IMAP TLS: certificate of %s not "
				 "trusted: %s (X.509 error %d)", c->host,
				 X509_verify_cert_error_string(code), code);
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
	if (untrusted != NULL)
		x509_stack_free(untrusted);
	if (chain != NULL)
		mailstream_certificate_chain_free(chain);
	return r;
}

/* --- session steps -------------------------------------------------- */

static int
refresh_capabilities(struct imapc *c, struct cp_error *err)
{
	struct mailimap_capability_data *caps = NULL;
	int r = mailimap_capability(c->imap, &caps);

	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "CAPABILITY", err);
	mailimap_capability_data_free(caps);
	return 0;
}

/* LIST "" "" gives the hierarchy delimiter. */
static int
learn_delimiter(struct imapc *c, struct cp_error *err)
{
	clist *list = NULL;
	int r = mailimap_list(c->imap, "", "", &list);

	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "LIST", err);
	if (list != NULL && clist_begin(list) != NULL) {
		struct mailimap_mailbox_list *mb =
			clist_content(clist_begin(list));

		c->delimiter = mb->mb_delimiter;
	}
	if (list != NULL)
		mailimap_list_result_free(list);
	return 0;
}

/* 1 if the folder exists (LIST finds it), 0 if not, < 0 on error. */
static int
folder_exists(struct imapc *c, const char *name, struct cp_error *err)
{
	clist *list = NULL;
	int r = mailimap_list(c->imap, "", name, &list), found;

	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "LIST", err);
	found = list != NULL && clist_begin(list) != NULL;
	if (list != NULL)
		mailimap_list_result_free(list);
	return found;
}

static int
folder_ensure(struct imapc *c, const char *folder, struct cp_error *err)
{
	_cleanup_free_ char *name = folder_on_server(c, folder);
	char text[128];
	int r;

	if (name == NULL)
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	r = folder_exists(c, name, err);
	if (r != 0)
		return r < 0 ? r : 0;
	r = mailimap_create(c->imap, name);
	if (r == MAILIMAP_NO_ERROR)
		return 0;
	if (r != MAILIMAP_ERROR_CREATE)
		return etpan_fail(c, r, "CREATE", err);
	/* Someone else may have created it since the LIST. */
	server_text(c, text, sizeof(text));
	r = folder_exists(c, name, err);
	if (r != 0)
		return r < 0 ? r : 0;
	return cp_error_set(err, -EPROTO, "IMAP CREATE %s failed: %s", folder,
			    text);
}

static int
open_session(struct imapc *c, const struct imapc_opts *o, struct cp_error *err)
{
	int port = o->port, r;

	if (port == 0)
		port = o->tls == TLS_IMPLICIT ? 993 : 143;
	if (o->tls == TLS_IMPLICIT)
		r = mailimap_ssl_connect_with_callback(c->imap, c->host,
						       (uint16_t)port,
						       tls_setup, c);
	else
		r = mailimap_socket_connect(c->imap, c->host, (uint16_t)port);
	if (r == MAILIMAP_NO_ERROR_AUTHENTICATED)
		return cp_error_set(err, -EPROTO, "IMAP connect: server "
				    "greeted with PREAUTH; carepost logs in");
	if (r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED &&
	    r != MAILIMAP_NO_ERROR) {
		if (r == MAILIMAP_ERROR_CONNECTION_REFUSED ||
		    r == MAILIMAP_ERROR_STREAM)
			return cp_error_set(err, -ECONNREFUSED, "IMAP connect: "
					    "cannot connect to %s port %d",
					    c->host, port);
		return etpan_fail(c, r, "connect", err);
	}
	if (o->tls == TLS_IMPLICIT)
		return tls_verify(c, o->ca_file, err);
	if (o->tls != TLS_REQUIRED)
		return 0;

	r = refresh_capabilities(c, err);
	if (r < 0)
		return r;
	if (!mailimap_has_extension(c->imap, "STARTTLS"))
		return cp_error_set(err, -EPROTO, "IMAP STARTTLS: %s does not "
				    "offer STARTTLS (tls = starttls)", c->host);
	r = mailimap_socket_starttls_with_callback(c->imap, tls_setup, c);
	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "STARTTLS", err);
	r = tls_verify(c, o->ca_file, err);
	if (r < 0)
		return r;
	return refresh_capabilities(c, err);
}

static int
opts_check(const struct imapc_opts *o, struct cp_error *err)
{
	int r;

	if (o == NULL || o->host == NULL || o->host[0] == '\0')
		return cp_error_set(err, -EINVAL, "IMAP: no host");
	if (o->user == NULL || o->user[0] == '\0' || o->password == NULL)
		return cp_error_set(err, -EINVAL, "IMAP: user and password "
				    "are required");
	if (o->port < 0 || o->port > 65535)
		return cp_error_set(err, -EINVAL, "IMAP: port %d out of range",
				    o->port);
	if (o->timeout < 0)
		return cp_error_set(err, -EINVAL, "IMAP: negative timeout");
	switch (o->tls) {
	case TLS_IMPLICIT:
	case TLS_REQUIRED:
		break;
	case TLS_OFF:
		if (!host_is_loopback(o->host))
			return cp_error_set(err, -EPERM, "IMAP: clear text to "
					    "%s refused: tls = off is only "
					    "allowed for a loopback host",
					    o->host);
		break;
	default:
		return cp_error_set(err, -EINVAL, "IMAP: tls must be implicit, "
				    "starttls or off");
	}
	if (o->tls != TLS_OFF && o->ca_file != NULL &&
	    access(o->ca_file, R_OK) != 0)
		return cp_error_set(err, -EINVAL, "IMAP: ca_file %s is not "
				    "readable", o->ca_file);
	r = folder_check("mailbox", o->mailbox ? o->mailbox : "INBOX", err);
	if (r == 0 && o->processed_folder != NULL)
		r = folder_check("processed_folder", o->processed_folder, err);
	if (r == 0 && o->quarantine_folder != NULL)
		r = folder_check("quarantine_folder", o->quarantine_folder, err);
	return r;
}

int
imapc_connect(const struct imapc_opts *o, struct imapc **out,
	      struct cp_error *err)
{
	_cleanup_free_ char *mailbox = NULL;
	struct imapc *c;
	int r;

	if (out == NULL)
		return cp_error_set(err, -EINVAL, "IMAP: no result pointer");
	*out = NULL;
	r = opts_check(o, err);
	if (r < 0)
		return r;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	c->host = strdup(o->host);
	c->imap = mailimap_new(0, NULL);
	c->max_size = o->max_size ? o->max_size : IMAPC_DEFAULT_MAX_SIZE;
	if (c->host == NULL || c->imap == NULL) {
		imapc_close(c);
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	}
	mailimap_set_timeout(c->imap, o->timeout ? o->timeout
						 : IMAPC_DEFAULT_TIMEOUT);

	r = open_session(c, o, err);
	if (r < 0)
		goto fail;
	r = mailimap_login(c->imap, o->user, o->password);
	if (r != MAILIMAP_NO_ERROR) {
		r = etpan_fail(c, r, "LOGIN", err);
		goto fail;
	}
	r = refresh_capabilities(c, err);
	if (r == 0)
		r = learn_delimiter(c, err);
	if (r == 0 && o->processed_folder != NULL)
		r = folder_ensure(c, o->processed_folder, err);
	if (r == 0 && o->quarantine_folder != NULL)
		r = folder_ensure(c, o->quarantine_folder, err);
	if (r < 0)
		goto fail;

	mailbox = folder_on_server(c, o->mailbox ? o->mailbox : "INBOX");
	if (mailbox == NULL) {
		r = cp_error_set(err, -ENOMEM, "IMAP: out of memory");
		goto fail;
	}
	r = mailimap_select(c->imap, mailbox);
	if (r != MAILIMAP_NO_ERROR) {
		r = etpan_fail(c, r, "SELECT", err);
		goto fail;
	}
	c->uidvalidity = c->imap->imap_selection_info->sel_uidvalidity;
	if (c->uidvalidity == 0) {
		r = cp_error_set(err, -EPROTO, "IMAP SELECT: the server sent "
				 "no UIDVALIDITY");
		goto fail;
	}
	if (c->imap->imap_selection_info->sel_perm == MAILIMAP_MAILBOX_READONLY) {
		r = cp_error_set(err, -EPROTO, "IMAP SELECT: the mailbox is "
				 "read-only");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	imapc_close(c);
	return r;
}

uint32_t
imapc_uidvalidity(const struct imapc *c)
{
	return c ? c->uidvalidity : 0;
}

int
imapc_pending(const struct imapc *c)
{
	return c != NULL && c->next < c->nuids;
}

int
imapc_has(const struct imapc *c, const char *name)
{
	return c && name && mailimap_has_extension(c->imap, name) ? 1 : 0;
}

int
imapc_fd(const struct imapc *c)
{
	return c ? mailimap_idle_get_fd(c->imap) : -1;
}

void
imapc_close(struct imapc *c)
{
	if (c == NULL)
		return;
	if (c->imap != NULL) {
		if (c->idling && c->imap->imap_stream != NULL && !c->broken &&
		    mailimap_idle_done(c->imap) != MAILIMAP_NO_ERROR)
			c->broken = true;
		if (c->imap->imap_stream != NULL && !c->broken)
			(void)mailimap_logout(c->imap);
		mailimap_free(c->imap);
	}
	free(c->uids);
	free(c->host);
	free(c);
}

/* --- fetch ---------------------------------------------------------- */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * UIDs in first:last (last 0: "*") that are >= first, sorted, without
 * duplicates. Caller frees *uids.
 */
static int
search_uids(struct imapc *c, uint32_t first, uint32_t last, uint32_t **uids,
	    size_t *n, struct cp_error *err)
{
	struct mailimap_search_key *key;
	struct mailimap_set *set;
	clistiter *it;
	clist *res = NULL;
	size_t i, k = 0;
	uint32_t *v;
	int r;

	*uids = NULL;
	*n = 0;
	set = mailimap_set_new_interval(first, last);
	key = set ? mailimap_search_key_new_uid(set) : NULL;
	if (key == NULL) {
		if (set != NULL)
			mailimap_set_free(set);
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	}
	r = mailimap_uid_search(c->imap, NULL, key, &res);
	mailimap_search_key_free(key);
	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "UID SEARCH", err);
	v = malloc((clist_count(res) + 1) * sizeof(*v));
	if (v == NULL) {
		mailimap_search_result_free(res);
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	}
	for (it = clist_begin(res); it != NULL; it = clist_next(it)) {
		uint32_t uid = *(uint32_t *)clist_content(it);

		/* "N:*" matches the top UID even when it is below N. */
		if (uid >= first)
			v[k++] = uid;
	}
	mailimap_search_result_free(res);
	qsort(v, k, sizeof(*v), cmp_u32);
	for (i = 0, *n = 0; i < k; i++)
		if (*n == 0 || v[*n - 1] != v[i])
			v[(*n)++] = v[i];
	*uids = v;
	return 0;
}

struct att {
	uint32_t uid;
	bool has_size;
	uint32_t size;
	const char *body;
	size_t body_len;
};

static void
att_parse(struct mailimap_msg_att *ma, struct att *a)
{
	clistiter *it;

	memset(a, 0, sizeof(*a));
	for (it = clist_begin(ma->att_list); it != NULL; it = clist_next(it)) {
		struct mailimap_msg_att_item *item = clist_content(it);
		struct mailimap_msg_att_body_section *sec;
		struct mailimap_msg_att_static *s;

		if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
			continue;
		s = item->att_data.att_static;
		switch (s->att_type) {
		case MAILIMAP_MSG_ATT_UID:
			a->uid = s->att_data.att_uid;
			break;
		case MAILIMAP_MSG_ATT_RFC822_SIZE:
			a->has_size = true;
			a->size = s->att_data.att_rfc822_size;
			break;
		case MAILIMAP_MSG_ATT_BODY_SECTION:
			sec = s->att_data.att_body_section;
			if (sec != NULL && sec->sec_body_part != NULL) {
				a->body = sec->sec_body_part;
				a->body_len = sec->sec_length;
			}
			break;
		default:
			break;
		}
	}
}

static struct imapc_msg *
msg_by_uid(struct imapc_msg *m, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m[mid].uid == uid)
			return &m[mid];
		if (m[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* UID FETCH set (items); results land in m[] (sorted by uid). */
static int
fetch_into(struct imapc *c, struct mailimap_set *set, bool bodies,
	   struct imapc_msg *m, bool *sized, size_t n, struct cp_error *err)
{
	struct mailimap_fetch_type *ft;
	struct mailimap_fetch_att *fa;
	clistiter *it;
	clist *res = NULL;
	int r;

	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	if (ft == NULL)
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	fa = mailimap_fetch_att_new_uid();
	if (fa == NULL || mailimap_fetch_type_new_fetch_att_list_add(ft, fa) != 0)
		goto nomem;
	if (bodies) {
		struct mailimap_section *sec = mailimap_section_new(NULL);

		/*
		 * BODY.PEEK[]<0.max_size+1>: libetpan buffers a whole literal,
		 * so a server that understated RFC822.SIZE still cannot make
		 * us hold more than max_size + 1 bytes per message.
		 */
		uint32_t cap = c->max_size >= UINT32_MAX ? UINT32_MAX
							 : (uint32_t)c->max_size + 1;

		fa = sec ? mailimap_fetch_att_new_body_peek_section_partial(sec, 0, cap)
			 : NULL;
		if (fa == NULL && sec != NULL)
			mailimap_section_free(sec);
	} else {
		fa = mailimap_fetch_att_new_rfc822_size();
	}
	if (fa == NULL || mailimap_fetch_type_new_fetch_att_list_add(ft, fa) != 0)
		goto nomem;

	r = mailimap_uid_fetch(c->imap, set, ft, &res);
	mailimap_fetch_type_free(ft);
	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "UID FETCH", err);

	for (it = clist_begin(res); it != NULL; it = clist_next(it)) {
		struct imapc_msg *msg;
		struct att a;

		att_parse(clist_content(it), &a);
		msg = msg_by_uid(m, n, a.uid);
		if (msg == NULL)
			continue;	/* unsolicited, or not asked for */
		if (!bodies) {
			if (a.has_size) {
				msg->size = a.size;
				sized[msg - m] = true;
			}
			continue;
		}
		if (a.body == NULL || msg->raw != NULL)
			continue;
		if (a.body_len > c->max_size) {	/* bigger than announced */
			msg->size = a.body_len > UINT32_MAX ? UINT32_MAX
							    : (uint32_t)a.body_len;
			continue;
		}
		msg->raw = malloc(a.body_len + 1);
		if (msg->raw == NULL) {
			mailimap_fetch_list_free(res);
			return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
		}
		memcpy(msg->raw, a.body, a.body_len);
		msg->raw[a.body_len] = '\0';
		msg->len = a.body_len;
	}
	mailimap_fetch_list_free(res);
	return 0;
nomem:
	if (fa != NULL)
		mailimap_fetch_att_free(fa);
	mailimap_fetch_type_free(ft);
	return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
}

typedef bool msg_filter(const struct imapc_msg *m, size_t max_size);

static struct mailimap_set *
set_of(const struct imapc_msg *m, size_t n, msg_filter *want, size_t max_size)
{
	struct mailimap_set *set = mailimap_set_new_empty();
	size_t i;

	for (i = 0; set != NULL && i < n; i++) {
		if (want != NULL && !want(&m[i], max_size))
			continue;
		if (mailimap_set_add_single(set, m[i].uid) != MAILIMAP_NO_ERROR) {
			mailimap_set_free(set);
			return NULL;
		}
	}
	return set;
}

static bool
small_enough(const struct imapc_msg *m, size_t max_size)
{
	return m->size <= max_size;
}

/* Drop messages that vanished meanwhile (no size, or no body when due). */
static size_t
compact(struct imapc_msg *m, const bool *sized, size_t n, size_t max_size)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		bool gone = !sized[i] ||
			    (m[i].raw == NULL && m[i].size <= max_size);

		if (gone) {
			free(m[i].raw);
			continue;
		}
		m[k++] = m[i];
	}
	return k;
}

int
imapc_fetch(struct imapc *c, uint32_t first_uid, size_t max,
	    struct imapc_msg **msgs, size_t *n, struct cp_error *err)
{
	_cleanup_free_ bool *sized = NULL;
	struct imapc_msg *m = NULL;
	struct mailimap_set *set;
	size_t take, i, total = 0, bodies = 0;
	const uint32_t *uids;
	int r;

	if (msgs == NULL || n == NULL)
		return cp_error_set(err, -EINVAL, "IMAP fetch: no result pointer");
	*msgs = NULL;
	*n = 0;
	if (c == NULL || max == 0)
		return cp_error_set(err, -EINVAL, "IMAP fetch: bad arguments");
	if (first_uid == 0)
		first_uid = 1;

	/* One UID SEARCH serves the batches until its answer is used up. */
	while (c->next < c->nuids && c->uids[c->next] < first_uid)
		c->next++;
	if (c->next >= c->nuids) {
		free(c->uids);
		c->uids = NULL;
		c->nuids = c->next = 0;
		/* Dovecot brings a session's view of the mailbox up to date
		 * after a command, not before: a NOOP first, so that a fresh
		 * SEARCH sees mail that came since the last command (a server
		 * polled without IDLE would otherwise show it a poll late). */
		r = mailimap_noop(c->imap);
		if (r != MAILIMAP_NO_ERROR)
			return etpan_fail(c, r, "NOOP", err);
		r = search_uids(c, first_uid, 0, &c->uids, &c->nuids, err);
		if (r < 0 || c->nuids == 0)
			return r;
	}
	uids = c->uids + c->next;
	take = c->nuids - c->next < max ? c->nuids - c->next : max;
	m = calloc(take, sizeof(*m));
	sized = calloc(take, sizeof(*sized));
	if (m == NULL || sized == NULL) {
		free(m);
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	}
	for (i = 0; i < take; i++)
		m[i].uid = uids[i];

	set = set_of(m, take, NULL, 0);
	if (set == NULL) {
		r = cp_error_set(err, -ENOMEM, "IMAP: out of memory");
		goto fail;
	}
	r = fetch_into(c, set, false, m, sized, take, err);
	mailimap_set_free(set);
	if (r < 0)
		goto fail;

	/* Bound the batch's bytes: at least one message, then max_size. */
	for (i = 0; i < take; i++) {
		if (!sized[i] || m[i].size > c->max_size)
			continue;
		if (bodies > 0 && total + m[i].size > c->max_size)
			break;
		total += m[i].size;
		bodies++;
	}
	take = i;
	c->next += take;
	if (bodies > 0) {
		set = set_of(m, take, small_enough, c->max_size);
		if (set == NULL) {
			r = cp_error_set(err, -ENOMEM, "IMAP: out of memory");
			goto fail;
		}
		r = fetch_into(c, set, true, m, sized, take, err);
		mailimap_set_free(set);
		if (r < 0)
			goto fail;
	}
	*n = compact(m, sized, take, c->max_size);
	if (*n == 0) {
		free(m);
		m = NULL;
	}
	*msgs = m;
	return 0;
fail:
	imapc_msgs_free(m, take);
	return r;
}

void
imapc_msgs_free(struct imapc_msg *msgs, size_t n)
{
	size_t i;

	if (msgs == NULL)
		return;
	for (i = 0; i < n; i++)
		free(msgs[i].raw);
	free(msgs);
}

/* --- move ----------------------------------------------------------- */

static int
move_by_copy(struct imapc *c, struct mailimap_set *set, const char *name,
	     struct cp_error *err)
{
	struct mailimap_store_att_flags *sa = NULL;
	struct mailimap_flag_list *fl;
	struct mailimap_flag *f;
	int r;

	r = mailimap_uid_copy(c->imap, set, name);
	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "UID COPY", err);

	fl = mailimap_flag_list_new_empty();
	f = mailimap_flag_new_deleted();
	if (fl == NULL || f == NULL || mailimap_flag_list_add(fl, f) != 0) {
		if (f != NULL)
			mailimap_flag_free(f);
		if (fl != NULL)
			mailimap_flag_list_free(fl);
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	}
	sa = mailimap_store_att_flags_new_add_flags_silent(fl);
	if (sa == NULL) {
		mailimap_flag_list_free(fl);
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	}
	r = mailimap_uid_store(c->imap, set, sa);
	mailimap_store_att_flags_free(sa);
	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "UID STORE", err);

	if (mailimap_has_extension(c->imap, "UIDPLUS")) {
		r = mailimap_uid_expunge(c->imap, set);
		if (r != MAILIMAP_NO_ERROR)
			return etpan_fail(c, r, "UID EXPUNGE", err);
	} else {
		r = mailimap_expunge(c->imap);
		if (r != MAILIMAP_NO_ERROR)
			return etpan_fail(c, r, "EXPUNGE", err);
	}
	return 0;
}

/* move_set - UID MOVE, else COPY + STORE + EXPUNGE; set is freed. */
static int
move_set(struct imapc *c, struct mailimap_set *set, const char *name,
	 struct cp_error *err)
{
	int r;

	if (mailimap_has_extension(c->imap, "MOVE")) {
		r = mailimap_uid_move(c->imap, set, name);
		r = r == MAILIMAP_NO_ERROR ? 0 : etpan_fail(c, r, "UID MOVE", err);
	} else {
		r = move_by_copy(c, set, name, err);
	}
	mailimap_set_free(set);
	return r;
}

int
imapc_move_uids(struct imapc *c, const uint32_t *uids, size_t n,
		const char *folder, struct cp_error *err)
{
	_cleanup_free_ char *name = NULL;
	struct mailimap_set *set;
	size_t i;
	int r;

	if (c == NULL || (n > 0 && uids == NULL))
		return cp_error_set(err, -EINVAL, "IMAP move: bad arguments");
	if (n == 0)
		return 0;
	r = folder_check("folder", folder, err);
	if (r < 0)
		return r;
	name = folder_on_server(c, folder);
	set = mailimap_set_new_empty();
	if (name == NULL || set == NULL) {
		if (set != NULL)
			mailimap_set_free(set);
		return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
	}
	/* Runs of consecutive UIDs become ranges: "1:50", not 50 numbers. */
	for (i = 0; i < n; i++) {
		size_t j = i;

		if (uids[i] == 0) {
			mailimap_set_free(set);
			return cp_error_set(err, -EINVAL, "IMAP move: UID 0");
		}
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (mailimap_set_add_interval(set, uids[i], uids[j]) != MAILIMAP_NO_ERROR) {
			mailimap_set_free(set);
			return cp_error_set(err, -ENOMEM, "IMAP: out of memory");
		}
		i = j;
	}
	r = move_set(c, set, name, err);
	if (r < 0 && err != NULL && r != -ENOMEM) {
		char step[sizeof(err->text)];

		cp_strlcpy(step, err->text, sizeof(step));
		cp_error_set(err, r, "%s (%zu UIDs from %u to %s)", step, n, uids[0], folder);
	}
	return r;
}

/* --- IDLE ----------------------------------------------------------- */

static void
arm_news(struct imapc *c)
{
	struct mailimap_selection_info *s = c->imap->imap_selection_info;

	s->sel_exists = IMAPC_SENTINEL;
	s->sel_recent = IMAPC_SENTINEL;
	s->sel_has_exists = 0;
	s->sel_has_recent = 0;
}

/* After arm_news and one command: did EXISTS, RECENT or EXPUNGE arrive? */
static bool
news_arrived(const struct imapc *c)
{
	const struct mailimap_selection_info *s = c->imap->imap_selection_info;
	const struct mailimap_response_info *ri = c->imap->imap_response_info;

	return s->sel_exists != IMAPC_SENTINEL ||
	       s->sel_recent != IMAPC_SENTINEL || s->sel_has_exists ||
	       s->sel_has_recent ||
	       (ri != NULL && ri->rsp_expunged != NULL &&
		clist_begin(ri->rsp_expunged) != NULL);
}

int
imapc_idle_begin(struct imapc *c, struct cp_error *err)
{
	int r;

	if (c == NULL || c->idling)
		return cp_error_set(err, -EINVAL, "IMAP IDLE: bad arguments");
	if (!mailimap_has_idle(c->imap))
		return cp_error_set(err, -ENOTSUP, "IMAP IDLE: not offered by the server");
	arm_news(c);
	r = mailimap_idle(c->imap);
	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "IDLE", err);
	c->idling = true;
	/* Lines that came with the "+" reply are in libetpan's buffer:
	 * the socket will not signal them. */
	return c->imap->imap_stream != NULL &&
	       c->imap->imap_stream->read_buffer_len > 0;
}

int
imapc_idle_end(struct imapc *c, struct cp_error *err)
{
	int r;

	if (c == NULL || !c->idling)
		return cp_error_set(err, -EINVAL, "IMAP IDLE DONE: not idling");
	c->idling = false;
	r = mailimap_idle_done(c->imap);
	if (r != MAILIMAP_NO_ERROR)
		return etpan_fail(c, r, "IDLE DONE", err);
	return news_arrived(c) ? 1 : 0;
}

/* --- backoff -------------------------------------------------------- */

int
imapc_backoff(int attempt)
{
	int base, secs;

	if (attempt < 0)
		attempt = 0;
	base = attempt >= 9 ? IMAPC_BACKOFF_MAX : 1 << attempt;
	if (base > IMAPC_BACKOFF_MAX)
		base = IMAPC_BACKOFF_MAX;
	/* +-25% jitter, so that many daemons do not reconnect in step. */
	secs = (int)(((int64_t)base * (75 + (int)arc4random_uniform(51)) + 50) / 100);
	if (secs < 1)
		secs = 1;
	if (secs > IMAPC_BACKOFF_MAX)
		secs = IMAPC_BACKOFF_MAX;
	return secs;
}
