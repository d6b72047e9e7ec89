/* Tools: every exec in the enclosure (tp_btf/sched_process_exec, which runs after the new image
 * is set up and before its first instruction) becomes a record; a granted tool, identified by
 * the device and inode of the executed file, is counted per tool and in total, and its price is
 * added to the enclosure's cost. Over max_calls, tool_calls or cost_usd the exec'ing process is
 * killed here (bpf_send_signal) and a budget record tells the supervisor to end the enclosure.
 * Included by enclosure.bpf.c. */
#include "maps.bpf.h"

#define SIGKILL 9

static __always_inline void file_key(struct enc_tool_key *key, __u64 cgid, struct file *f)
{
	inode_key(key, cgid, BPF_CORE_READ(f, f_inode));
}

static __always_inline int tool_index(__u64 cgid, struct file *f)
{
	if (!f)
		return -1;
	struct enc_tool_key key = {};
	file_key(&key, cgid, f);
	__u32 *idx = bpf_map_lookup_elem(&tools, &key);
	return idx ? (int)*idx : -1;
}

/* How far tree_tool_index walks up from an executed file, as the read triggers walk. */
#define TREE_TOOL_MAX_DEPTH 4096

struct tree_tool_walk {
	struct dentry *d; /* the dentry whose parent is looked up next */
	__u64 cgid;
	int tool;
};

/* One step of the walk (a bpf_loop callback): moves to the parent and looks it up. Returns 1
 * (stop) at a tree tool's directory or at the root of the file system. */
static long tree_tool_step(__u64 index, void *ctx)
{
	struct tree_tool_walk *w = ctx;
	struct dentry *d = w->d; /* (a local: CO-RE relocates only the kernel's types) */
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (!parent || parent == d)
		return 1;
	w->d = parent;
	struct inode *inode = BPF_CORE_READ(parent, d_inode);
	if (!inode)
		return 1;
	struct enc_tool_key key = {};
	inode_key(&key, w->cgid, inode);
	__u32 *idx = bpf_map_lookup_elem(&tree_tools, &key);
	if (!idx)
		return 0;
	w->tool = (int)*idx;
	return 1;
}

/* The tree tool whose directory is the nearest ancestor of the executed file (at most
 * TREE_TOOL_MAX_DEPTH levels up), or -1. The file's own key is never looked up: only
 * directories are trees. */
static __always_inline int tree_tool_index(__u64 cgid, struct file *f)
{
	struct tree_tool_walk walk = {};
	walk.d = BPF_CORE_READ(f, f_path.dentry);
	walk.cgid = cgid;
	walk.tool = -1;
	if (walk.d)
		bpf_loop(TREE_TOOL_MAX_DEPTH, tree_tool_step, &walk, 0);
	return walk.tool;
}

static __always_inline int script_index(__u64 cgid, const char *filename)
{
	__u32 zero = 0;
	struct enc_script_key *key = bpf_map_lookup_elem(&script_scratch, &zero);
	if (!key)
		return -1;
	__builtin_memset(key, 0, sizeof(*key));
	key->cgroup_id = cgid;
	if (bpf_probe_read_kernel_str(key->path, sizeof(key->path), filename) < 0)
		return -1;
	__u32 *idx = bpf_map_lookup_elem(&script_tools, key);
	return idx ? (int)*idx : -1;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(enc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct enc_config *cfg = bpf_map_lookup_elem(&configs, &cgid);
	if (!cfg)
		return 0;
	struct enc_state *st = state_of(cgid);
	if (!st)
		return 0;
	__u64 execs = __sync_fetch_and_add(&st->execs, 1);
	int initial = execs == 0;
	struct file *file = BPF_CORE_READ(bprm, file);
	const char *filename = BPF_CORE_READ(bprm, filename);
	/* binfmt_script replaced bprm->interp (initially the filename) with the #! interpreter, and
   * bprm->file with the interpreter's file: a script is recognised by the path it was run by. */
	int script = BPF_CORE_READ(bprm, interp) != filename;
	int tool = script ? script_index(cgid, filename) : -1;
	if (tool < 0)
		tool = tool_index(cgid, file);
	__u64 tool_count = 0, calls = 0, cost = 0;
	int killed = 0;
	int refused = 0;
	if (!script && tool < 0 && file) {
		/* The dynamic loader run as a program would run any readable ELF: refused. */
		struct enc_tool_key key = {};
		file_key(&key, cgid, file);
		if (bpf_map_lookup_elem(&loaders, &key)) {
			refused = ENC_EXEC_LOADER;
			killed = 1;
			__sync_fetch_and_add(&st->exec_denied, 1);
			bpf_send_signal(SIGKILL);
		} else {
			tool = tree_tool_index(cgid, file);
		}
	}
	__u32 rule = 0;
	if (tool >= 0 && tool < ENC_MAX_TOOLS && !initial) {
		/* A composition rule that fired denies this tool: the new image dies before it runs. */
		__u64 denying = st->rules_fired & cfg->tool_denied_by[tool];
		if (denying) {
			refused = ENC_EXEC_RULE;
			rule = lowest_bit(denying);
			killed = 1;
			__sync_fetch_and_add(&st->exec_denied, 1);
			bpf_send_signal(SIGKILL);
		} else if (cfg->tool_triggers[tool] & ~st->rules_fired) {
			fire_rules(st, cgid, cfg->tool_triggers[tool], ENC_TRIGGER_EXEC, tool, ~0u,
				   0, 0, 0, 0);
		}
	}
	if (tool >= 0 && tool < ENC_MAX_TOOLS && (cfg->flags & ENC_COUNT_TOOLS) && !refused) {
		if (initial) {
			/* The command given to `enclosure run` does not count against any budget. */
			tool_count = st->tool_counts[tool];
			calls = st->tool_calls;
			cost = st->cost_micro;
		} else {
			tool_count = __sync_fetch_and_add(&st->tool_counts[tool], 1) + 1;
			calls = __sync_fetch_and_add(&st->tool_calls, 1) + 1;
			__u64 price = cfg->tool_cost_micro[tool];
			cost = __sync_fetch_and_add(&st->cost_micro, price) + price;
			__u64 max_calls = cfg->tool_max_calls[tool];
			if (tool_count > max_calls) {
				report_budget(st, cgid, ENC_BUDGET_TOOL_MAX_CALLS, tool, max_calls,
					      tool_count);
				killed = 1;
			}
			if ((cfg->flags & ENC_TOOL_CALLS_BUDGET) &&
			    calls > cfg->tool_calls_budget) {
				report_budget(st, cgid, ENC_BUDGET_TOOL_CALLS, tool,
					      cfg->tool_calls_budget, calls);
				killed = 1;
			}
			__u64 *reported = bpf_map_lookup_elem(&reported_costs, &cgid);
			__u64 spent = cost + (reported ? *reported : 0);
			if ((cfg->flags & ENC_COST_BUDGET) && spent > cfg->cost_budget_micro) {
				report_budget(st, cgid, ENC_BUDGET_COST, tool,
					      cfg->cost_budget_micro, spent);
				killed = 1;
			}
			if (killed)
				bpf_send_signal(SIGKILL);
		}
	}
	struct enc_exec_event *e = reserve_record(st, cgid, ENC_EV_EXEC, sizeof(*e));
	if (!e)
		return 0;
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->tool = tool;
	e->initial = initial;
	e->killed = killed;
	e->refused = refused;
	e->script = script;
	e->rule = rule;
	e->pad = 0;
	e->tool_count = tool_count;
	e->tool_calls = calls;
	e->cost_micro = cost;
	if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename) < 0)
		e->filename[0] = 0;
	unsigned long arg_start = BPF_CORE_READ(p, mm, arg_start);
	if (bpf_probe_read_user_str(e->argv0, sizeof(e->argv0), (const void *)arg_start) < 0)
		e->argv0[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
