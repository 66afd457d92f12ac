/*
 * NAME
 *	replyclean - a reply's text made ready for the trimmer's line rules
 * SYNOPSIS
 *	#include "replyclean.h"
 *
 *	r = replyclean_run(&text);
 * DESCRIPTION
 *	The first step of trim_reply (email_reply_trimmer's preprocessing),
 *	on text already valid UTF-8 with LF line ends: surrounding white
 *	space goes; PGP armour goes (the signed-message header and the
 *	signature block); a trailing "Unsubscribe:" footer goes; Outlook's
 *	alias quotes (">>>>> "Name" == ... writes:") lose their prefix;
 *	enclosed-style quotes (">>> name >>>" ... "<<< name <<<", and the
 *	unnamed ">>>>" ... "<<<<") become "> " quoted lines; quote prefixes
 *	such as "name>" and "|" become ">"; markers that a mail client
 *	wrapped over several lines are put back on one
 *	(replymark_join_wrapped); white space is stripped again.
 * ERRORS
 *	0, or -ENOMEM (-EFBIG over the buffer's limit); the text is then
 *	valid but cleaned only in part.
 * OWNERSHIP
 *	The caller's buffer is rewritten in place (its storage may be
 *	replaced).
 * THREAD SAFETY
 *	Reentrant.
 */
#ifndef CAREPOST_REPLYCLEAN_H
#define CAREPOST_REPLYCLEAN_H

#include "buf.h"

int replyclean_run(struct buf *t);

#endif
