// SPDX-License-Identifier: GPL-2.0
//
// spawnwatch's kernel side: every process's fork, exec and exit, read at the moment
// it happens and handed to user space through one ring buffer.
//
// An exec record carries what user space could otherwise only read from /proc after
// the fact, when a short command (`id`, `uname`) is often gone: the executable's path
// as /proc/PID/exe shows it, whether that file is deleted or a memfd, the argument
// list from the new process's memory, the working directory, the credentials.
//
// Portable and verifier-friendly from Linux 5.8 (ring buffer, bpf_ktime_get_boot_ns):
// BTF-enabled tracepoints (no tracefs needed), CO-RE field access through the local
// struct definitions below (no vmlinux.h: the object is the same whatever kernel it is
// built on), bounded loops only, and copies whose sizes the verifier can bound.
//
// A full ring buffer drops the record and counts the drop in `drops`; the kernel never
// waits for user space.
//
// Built by `build.sh` beside this file (clang, pinned flags); the object is committed
// and CI rebuilds it and checks that it is the same. The record layout is mirrored in
// `wire.rs`: change both together.
//
// GPL: tracing programs that read kernel memory need a GPL-compatible licence.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

// ---- The kernel's structures, as far as read here (CO-RE relocates every access) ----

struct qstr {
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct hlist_bl_node {
	struct hlist_bl_node **pprev;
} __attribute__((preserve_access_index));

struct dentry {
	struct hlist_bl_node d_hash;
	struct dentry *d_parent;
	struct qstr d_name;
} __attribute__((preserve_access_index));

struct vfsmount {
	struct dentry *mnt_root;
} __attribute__((preserve_access_index));

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
} __attribute__((preserve_access_index));

struct fs_struct {
	struct path pwd;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	struct file *exe_file;
} __attribute__((preserve_access_index));

typedef struct {
	unsigned int val;
} kuid_t;

typedef struct {
	unsigned int val;
} kgid_t;

struct cred {
	kuid_t uid;
	kgid_t gid;
	kuid_t euid;
	kgid_t egid;
} __attribute__((preserve_access_index));

typedef struct {
	int counter;
} atomic_t;

struct signal_struct {
	atomic_t live;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	const struct cred *cred;
	struct fs_struct *fs;
	struct signal_struct *signal;
	char comm[16];
} __attribute__((preserve_access_index));

// ---- The records (mirrored in wire.rs) ----

enum kind {
	KIND_EXEC = 1,
	KIND_FORK = 2,
	KIND_EXIT = 3,
};

enum flag {
	// argv was longer than ARGV_CAP: what is kept is its start.
	ARGV_TRUNCATED = 1 << 0,
	// argv could not be read from the new process's memory.
	ARGV_UNREAD = 1 << 1,
	// The executable's path is deeper than PATH_DEPTH components, longer than
	// PATH_CAP, or a component could not be read: the parts kept are its end.
	EXE_PATH_TRUNCATED = 1 << 2,
	// The same for the working directory.
	CWD_PATH_TRUNCATED = 1 << 3,
	// The executable file has no name any more (unlinked, or a file opened with
	// O_TMPFILE and never linked): /proc/PID/exe shows it with " (deleted)".
	EXE_DELETED = 1 << 4,
	// The executable is a memfd (memfd_create): a file that never had a name.
	EXE_MEMFD = 1 << 5,
	// The mm or its executable file was not there (a kernel thread would have none).
	EXE_UNKNOWN = 1 << 6,
};

// Kept of argv: 16 KiB holds a long web-shell one-liner; longer is cut and flagged.
#define ARGV_CAP 16384
// A path component as the kernel stores it: NAME_MAX and its NUL.
#define NAME_CAP 256
// Components kept per path, and their bytes: a path stops before PATH_CAP.
#define PATH_DEPTH 32
#define PATH_CAP 4096
// Masks every write offset into the buffer. The two paths take less than 2 * PATH_CAP
// bytes and argv starts after them, so no offset wraps: the masks only prove to the
// verifier that every copy lands inside `data`.
#define DATA_MASK (2 * PATH_CAP - 1)
#define DATA_SIZE (DATA_MASK + 1 + ARGV_CAP)

// Every record starts so; an exec's strings follow in `data`: the executable's path
// components (each NUL-terminated, the file's own name first, up to the root), the
// working directory's the same way, then argv as it lies in memory (NUL-separated).
struct header {
	__u64 boot_ns;
	__u32 tgid;
	// The parent's tgid (real_parent: whoever forked it, not a ptracer).
	__u32 ppid;
	__u32 uid;
	__u32 euid;
	__u32 gid;
	__u32 egid;
	__u32 exe_bytes;
	__u32 cwd_bytes;
	__u32 argv_bytes;
	__u16 exe_parts;
	__u16 cwd_parts;
	__u8 kind;
	__u8 flags;
	__u8 pad[6];
	char comm[16];
};

_Static_assert(sizeof(struct header) == 72, "wire.rs reads a 72-byte header");

struct exec_record {
	struct header h;
	char data[DATA_SIZE];
	// Where the next string goes in `data`. Kept in the map, not in a register: the
	// verifier then knows only its masked range, the same on every path through the
	// loops, and can prune them (a precise offset per path made it give up).
	__u32 cursor;
};

// The cursor, read and written through memory every time.
#define CURSOR(r) (*(volatile __u32 *)&(r)->cursor)

// The default ring size; user space may set another before loading.
#define RING_BYTES (4 << 20)

struct {
	__uint(type, 27 /* BPF_MAP_TYPE_RINGBUF */);
	__uint(max_entries, RING_BYTES);
} events SEC(".maps");

// Records dropped because the ring buffer was full, per kind (index = kind - 1).
struct {
	__uint(type, 6 /* BPF_MAP_TYPE_PERCPU_ARRAY */);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

// Where an exec record is assembled: too big for the 512-byte stack.
struct {
	__uint(type, 6 /* BPF_MAP_TYPE_PERCPU_ARRAY */);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_record);
} scratch SEC(".maps");

char LICENSE[] SEC("license") = "GPL";

static __always_inline void count_drop(__u32 kind)
{
	__u32 key = kind - 1;
	__u64 *count = bpf_map_lookup_elem(&drops, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
}

// bpf_ringbuf_output's flags: write without waking the reader, or wake it whatever
// is waiting before the record.
#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2

static __always_inline void output(void *record, __u64 size, __u32 kind)
{
	// Only an exec wakes the reader: a wake-up is an irq_work, about 20 us per record
	// in a VM (bpf_stats: fork and exit 20-25 us with it, 0.2-0.6 without), and forks
	// and exits need no hurry: they are read with the next exec, or at the reader's
	// next poll timeout (200 ms); the ring stays in order. The exec forces it: the
	// kernel's own choice wakes only a reader that has read everything before the
	// record, and a fork written without a wake-up is still there.
	__u64 flags = kind == KIND_EXEC ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_output(&events, record, size, flags) != 0)
		count_drop(kind);
}

static __always_inline void header_of(struct header *h, struct task_struct *task, __u8 kind)
{
	h->boot_ns = bpf_ktime_get_boot_ns();
	h->tgid = BPF_CORE_READ(task, tgid);
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->kind = kind;
	h->flags = 0;
}

// A fork or an exit: who, and their parent.
static __always_inline int small_record(struct task_struct *task, __u8 kind)
{
	struct header h = {};

	header_of(&h, task, kind);
	BPF_CORE_READ_INTO(&h.comm, task, comm);
	output(&h, sizeof(h), kind);
	return 0;
}

// The components of `path` from its last up to the root of the whole tree, as d_path
// walks them (crossing mount points), written at the cursor. Sets `*parts` and, when
// the walk could not finish, `truncated` in the flags.
static __always_inline void walk_path(struct exec_record *r, struct path *path, __u16 *parts,
				      __u8 truncated)
{
	struct dentry *dentry = BPF_CORE_READ(path, dentry);
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	struct mount *mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	__u32 budget = CURSOR(r) + PATH_CAP - NAME_CAP;
	__u16 count = 0;
	int i;

	for (i = 0; i < PATH_DEPTH; i++) {
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
		struct dentry *root = BPF_CORE_READ(vfsmnt, mnt_root);

		if (dentry == root) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

			if (up == mnt) {
				// The root of the whole tree.
				*parts = count;
				return;
			}
			// Up from the mount's root to where it is mounted.
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vfsmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
			continue;
		}
		__u32 off = CURSOR(r);

		if (off >= budget)
			break;
		const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
		long n = bpf_probe_read_kernel_str(&r->data[off & DATA_MASK], NAME_CAP, name);

		if (n <= 0)
			break;
		CURSOR(r) = off + n;
		count++;
		if (dentry == parent) {
			// A dentry of no directory (a memfd, a pipe): its name is all.
			*parts = count;
			return;
		}
		dentry = parent;
	}
	*parts = count;
	r->h.flags |= truncated;
}

// Whether the executable is a memfd or a deleted file.
static __always_inline __u8 exe_kind(struct file *exe)
{
	struct dentry *dentry = BPF_CORE_READ(exe, f_path.dentry);
	struct dentry *root = BPF_CORE_READ(exe, f_path.mnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	char prefix[6] = {};

	if (dentry == parent && dentry != root) {
		// A pseudo file with no directory; memfd_create names it "memfd:NAME".
		bpf_probe_read_kernel(prefix, sizeof(prefix), BPF_CORE_READ(dentry, d_name.name));
		if (prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
		    prefix[4] == 'd' && prefix[5] == ':')
			return EXE_MEMFD;
		return 0;
	}
	// d_unlinked(): removed from the dentry hash and not a root.
	if (!BPF_CORE_READ(dentry, d_hash.pprev) && dentry != parent)
		return EXE_DELETED;
	return 0;
}

SEC("tp_btf/sched_process_exec")
int on_exec(unsigned long long *ctx)
{
	struct task_struct *task = (void *)ctx[0];
	__u32 zero = 0;
	struct exec_record *r = bpf_map_lookup_elem(&scratch, &zero);

	if (!r)
		return 0;
	struct header *h = &r->h;

	header_of(h, task, KIND_EXEC);
	BPF_CORE_READ_INTO(&h->comm, task, comm);
	h->uid = BPF_CORE_READ(task, cred, uid.val);
	h->euid = BPF_CORE_READ(task, cred, euid.val);
	h->gid = BPF_CORE_READ(task, cred, gid.val);
	h->egid = BPF_CORE_READ(task, cred, egid.val);

	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	struct file *exe = mm ? BPF_CORE_READ(mm, exe_file) : 0;

	CURSOR(r) = 0;
	h->exe_parts = 0;
	if (exe) {
		struct path exe_path;

		BPF_CORE_READ_INTO(&exe_path, exe, f_path);
		h->flags |= exe_kind(exe);
		walk_path(r, &exe_path, &h->exe_parts, EXE_PATH_TRUNCATED);
	} else {
		h->flags |= EXE_UNKNOWN;
	}
	h->exe_bytes = CURSOR(r);

	struct path pwd;

	h->cwd_parts = 0;
	BPF_CORE_READ_INTO(&pwd, task, fs, pwd);
	if (pwd.dentry)
		walk_path(r, &pwd, &h->cwd_parts, CWD_PATH_TRUNCATED);
	h->cwd_bytes = CURSOR(r) - h->exe_bytes;

	h->argv_bytes = 0;
	if (mm) {
		unsigned long start = BPF_CORE_READ(mm, arg_start);
		unsigned long end = BPF_CORE_READ(mm, arg_end);
		__u64 len = end > start ? end - start : 0;

		if (len > ARGV_CAP) {
			len = ARGV_CAP;
			h->flags |= ARGV_TRUNCATED;
		}
		if (len > 0) {
			__u32 off = CURSOR(r);

			if (bpf_probe_read_user(&r->data[off & DATA_MASK], len, (void *)start) == 0) {
				CURSOR(r) = off + len;
				h->argv_bytes = len;
			} else {
				h->flags |= ARGV_UNREAD;
			}
		}
	}
	// The cursor stays below DATA_SIZE; the test says so in terms the verifier follows.
	__u64 size = sizeof(struct header) + CURSOR(r);

	if (size > sizeof(struct header) + DATA_SIZE)
		size = sizeof(struct header) + DATA_SIZE;
	output(r, size, KIND_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int on_fork(unsigned long long *ctx)
{
	struct task_struct *child = (void *)ctx[1];

	// A new thread, not a new process.
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	return small_record(child, KIND_FORK);
}

SEC("tp_btf/sched_process_exit")
int on_exit(unsigned long long *ctx)
{
	struct task_struct *task = (void *)ctx[0];

	// The process ends with its last thread: do_exit() has counted this one out.
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	return small_record(task, KIND_EXIT);
}
