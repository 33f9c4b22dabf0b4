/* SPDX-License-Identifier: MIT */
/*
 * persist.h - the registry saved in a file, so that a broker started after
 * another died knows the channels its clients still hold.
 *
 * Only metadata is saved: the segments live on in the clients' memfds. A
 * saved channel names its memfd by (st_dev, st_ino), so that a new broker
 * takes back only the very memfd a client hands it, not one it made up.
 * The format is zbusd_state.proto.
 */
#ifndef ZBD_PERSIST_H
#define ZBD_PERSIST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry.h"

#define ZBD_PERSIST_VERSION 2             /* State.version written, read */
#define ZBD_PERSIST_MAX_BYTES (16u << 20) /* larger files are refused */

/**
 * zbd_persist_save() - write every channel and watch of @reg to @path,
 * atomically
 * @path: the state file; its directory must be writable
 * @reg: the registry, only read
 *
 * Writes a new file beside @path (O_CREAT | O_EXCL, mode 0600, a unique
 * name) and renames it over @path: readers and a broker killed at any
 * point see the old file or the new one, never a part of either. Not
 * synced: what it describes (memfds) does not outlive the machine either.
 * A symbolic link at @path is replaced, not followed.
 *
 * Watches on channels @reg no longer holds are left out: they only wait
 * for their process to die to be forgotten.
 *
 * Return: 0; -E2BIG if @reg holds more channels or watches than
 * zbd_persist_load() accepts; -ENOMEM; -errno of fstat() on a channel's fd, or of creating,
 * writing, closing or renaming the file (-EACCES, -ENOSPC, -EIO,
 * -EISDIR...): the new file is then removed and @path left as it was.
 * Thread-safety: any thread, while nobody changes @reg.
 */
int zbd_persist_save(const char *path, const struct zbd_registry *reg);

/* What a state file holds. */
struct zbd_saved_state {
	struct zbd_saved_channel *channels; /* malloc()ed, sorted by id */
	size_t nchannels;
	struct zbd_saved_watch *watches;    /* malloc()ed */
	size_t nwatches;
	uint64_t next_id;                   /* the registry's, as saved */
};

/* Free what zbd_persist_load() gave and zero @st. */
void zbd_saved_state_free(struct zbd_saved_state *st);

/**
 * zbd_persist_load() - read back what zbd_persist_save() wrote
 * @path: the state file
 * @out: receives the channels and watches (NULL arrays when there are
 *       none), for zbd_saved_state_free()
 *
 * The file is hostile input: every field is checked before it is copied
 * out, and a single bad channel or watch refuses the whole file.
 *
 * Return: 0, also when @path does not exist (a fresh start: all zero);
 * -ELOOP if @path is a symbolic link, which is never followed; -EPERM if
 * the file is not owned by the effective uid, or is writable by its group
 * or others; -EBADMSG if it is not a regular file, is larger than
 * ZBD_PERSIST_MAX_BYTES, does not unpack, has no version or was cut short,
 * holds more than ZBD_MAX_CHANNELS channels or ZBD_MAX_SAVED_WATCHES
 * watches, any channel has a name zb_ctl_name_valid() refuses or another
 * channel's name, an id of 0, above next_id or another channel's id, a
 * mode above 0777, a policy other than ZBUS_RELIABLE or ZBUS_LOSSY, or a
 * size of 0, or any watch names no saved channel, a kind other than a
 * subscriber's or a publisher's, a slot beyond its channel's, a word that
 * is not an active slot's or a pid of 0; -EPROTO if it has another
 * version; -ENOMEM; other -errno of open() or read() (-EACCES, -EIO...).
 * On failure @out is all zero.
 * Thread-safety: any thread.
 */
int zbd_persist_load(const char *path, struct zbd_saved_state *out);

#endif /* ZBD_PERSIST_H */
