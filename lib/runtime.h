/*
 * NAME
 *	runtime - what both programs open: config, token key, store, templates
 * SYNOPSIS
 *	#include "runtime.h"
 *
 *	struct runtime rt;
 *	runtime_open(&rt, "/etc/carepost/carepost.conf", RUNTIME_ALL, &err);
 *	...
 *	runtime_close(&rt);
 * DESCRIPTION
 *	runtime_open loads the config and then, as flags ask, the token key
 *	(security.token_key_file, read with config_read_secret: at least 16
 *	bytes, of which the first 64 are kept; it also keys the opaque
 *	patient references in logs, log_set_ref_key), the store (through
 *	storefmt_open: a store of a newer format is refused, one of an older
 *	format too unless flags hold RUNTIME_STORE_OLDER) and the
 *	templates. Errors name the file or key at fault.
 *
 *	runtime_load_key is runtime_open's RUNTIME_KEY step alone, for a
 *	runtime whose config is loaded (carepostctl's dry runs, which go on
 *	without a key).
 *
 *	runtime_config_path returns the -c argument, $CAREPOST_CONFIG, or
 *	/etc/carepost/carepost.conf.
 * ERRORS
 *	config_load's codes; -EINVAL when token_key_file is not set or the
 *	key is shorter than 16 bytes; config_read_secret's, storefmt_open's
 *	and tmplset_load's codes.
 * OWNERSHIP
 *	runtime_close releases everything runtime_open opened and wipes the
 *	key. runtime_open does not undo what it opened before a failure:
 *	call runtime_close after a failed runtime_open too (rt starts
 *	zeroed, so that is safe). rt->cfg, rt->store and rt->templates
 *	belong to rt; borrowers (outbound, inbound) must not outlive it.
 *	runtime_config_path returns its argument, the environment's string
 *	or a literal: nothing to free.
 * THREAD SAFETY
 *	runtime_open before threads start (it sets the log's reference key);
 *	the rest follows the modules it opened.
 */
#ifndef CAREPOST_RUNTIME_H
#define CAREPOST_RUNTIME_H

#include "config.h"
#include "store.h"
#include "tmplset.h"
#include "util.h"

#define RUNTIME_KEY		0x1
#define RUNTIME_STORE		0x2
#define RUNTIME_TEMPLATES	0x4
#define RUNTIME_ALL		0x7
#define RUNTIME_STORE_OLDER	0x8	/* a store of an older format too */

#define RUNTIME_DEFAULT_CONFIG "/etc/carepost/carepost.conf"

struct runtime {
	struct cp_config *cfg;
	struct store *store;
	struct tmplset *templates;
	unsigned char key[64];
	size_t keylen;
};

int runtime_open(struct runtime *rt, const char *config_path, int flags,
		 struct cp_error *err);
int runtime_load_key(struct runtime *rt, const char *config_path,
		     struct cp_error *err);
void runtime_close(struct runtime *rt);
const char *runtime_config_path(const char *arg);

#endif
