package ktrace

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// event is one tracepoint lsan can use.
type event struct {
	group, name string
	// prog is the BPF program that handles it.
	prog string
	// btfArgs: a tp_btf program, whose arguments are found by name (roles
	// names the variable that receives their positions); otherwise a
	// classic tracepoint read through its record.
	btfArgs bool
	roles   string
	// need lists the arguments the program cannot do without.
	need []string
	// legacy events were merged into others by later kernels (kmalloc_node
	// into kmalloc in Linux 6.1): their absence is expected there.
	legacy bool
	// alloc: the event allocates (at least one must be present).
	alloc bool
}

var events = []event{
	{group: "kmem", name: "kmalloc", prog: "kmalloc", btfArgs: true, roles: "kmalloc_roles", need: []string{"ptr"}, alloc: true},
	{group: "kmem", name: "kmalloc_node", prog: "kmalloc", btfArgs: true, roles: "kmalloc_roles", need: []string{"ptr"}, legacy: true, alloc: true},
	{group: "kmem", name: "kmem_cache_alloc", prog: "kmem_cache_alloc", btfArgs: true, roles: "cache_alloc_roles", need: []string{"ptr"}, alloc: true},
	{group: "kmem", name: "kmem_cache_alloc_node", prog: "kmem_cache_alloc", btfArgs: true, roles: "cache_alloc_roles", need: []string{"ptr"}, legacy: true, alloc: true},
	{group: "kmem", name: "kfree", prog: "kfree", btfArgs: true, roles: "kfree_roles", need: []string{"ptr"}},
	{group: "kmem", name: "kmem_cache_free", prog: "kmem_cache_free", btfArgs: true, roles: "cache_free_roles", need: []string{"ptr"}},
	{group: "kmem", name: "mm_page_alloc", prog: "mm_page_alloc", alloc: true},
	{group: "kmem", name: "mm_page_free", prog: "mm_page_free"},
	{group: "kmem", name: "mm_page_free_batched", prog: "mm_page_free_batched"},
	{group: "percpu", name: "percpu_alloc_percpu", prog: "percpu_alloc", alloc: true},
	{group: "percpu", name: "percpu_free_percpu", prog: "percpu_free"},
}

// EventStatus says whether one tracepoint is traced, and why not.
type EventStatus struct {
	// Name is "group:name", as perf and bpftrace spell tracepoints.
	Name     string `json:"name"`
	Attached bool   `json:"attached"`
	// Why it is not attached ("" when it is).
	Why string `json:"why,omitempty"`
	// Legacy: an event later kernels merged into another one, so its
	// absence loses nothing.
	Legacy bool `json:"legacy,omitempty"`
}

// errNoTracepoints: the kernel has none of the allocation tracepoints.
var errNoTracepoints = errors.New("this kernel has none of the kmem/percpu allocation tracepoints lsan kernel needs")

// roleNames maps a tracepoint argument name to its field in the roles
// struct. Old kernels passed bytes_req/bytes_alloc to kmem_cache_alloc;
// since Linux 6.2 it passes the cache (s) instead.
var roleNames = []string{"call_site", "ptr", "bytes_req", "bytes_alloc", "s"}

// tracepointArgs returns the argument names of the tracepoint name as the
// kernel's BTF has them: the parameters of __bpf_trace_<name> after the
// hidden __data. ok is false when the kernel has no such tracepoint.
func tracepointArgs(spec *btf.Spec, name string) (args []string, ok bool) {
	var fn *btf.Func
	if err := spec.TypeByName("__bpf_trace_"+name, &fn); err != nil {
		return nil, false
	}
	proto, isProto := fn.Type.(*btf.FuncProto)
	if !isProto || len(proto.Params) == 0 {
		return nil, false
	}
	for _, p := range proto.Params[1:] {
		args = append(args, p.Name)
	}
	return args, true
}

// hasTracepoint says whether the kernel defines the tracepoint: every
// tracepoint has a btf_trace_<name> typedef in BTF, classic or not.
func hasTracepoint(spec *btf.Spec, name string) bool {
	var td *btf.Typedef
	return spec.TypeByName("btf_trace_"+name, &td) == nil
}

// resolveRoles finds where each value lies among a tracepoint's arguments.
func resolveRoles(args []string, need []string) (ktraceRoles, error) {
	r := ktraceRoles{CallSite: -1, Ptr: -1, BytesReq: -1, BytesAlloc: -1, Cache: -1}
	slots := map[string]*int8{"call_site": &r.CallSite, "ptr": &r.Ptr, "bytes_req": &r.BytesReq, "bytes_alloc": &r.BytesAlloc, "s": &r.Cache}
	for i, a := range args {
		if slot, ok := slots[a]; ok && i < maxArgs {
			*slot = int8(i)
		}
	}
	var missing []string
	for _, n := range need {
		if *slots[n] < 0 {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return r, fmt.Errorf("its arguments (%s) lack %s", strings.Join(args, ", "), strings.Join(missing, ", "))
	}
	return r, nil
}

// maxArgs is how many arguments the program's arg() can read: the slab
// tracepoints have at most six.
const maxArgs = 6
