package ktrace

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

func TestResolveRoles(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want ktraceRoles
	}{
		// Linux 6.18's kmalloc and kmem_cache_alloc.
		{"kmalloc", []string{"call_site", "ptr", "bytes_req", "bytes_alloc", "gfp_flags", "node"}, ktraceRoles{CallSite: 0, Ptr: 1, BytesReq: 2, BytesAlloc: 3, Cache: -1}},
		{"kmem_cache_alloc 6.2+", []string{"call_site", "ptr", "s", "gfp_flags", "node"}, ktraceRoles{CallSite: 0, Ptr: 1, BytesReq: -1, BytesAlloc: -1, Cache: 2}},
		// Before 6.2 it passed the sizes instead of the cache.
		{"kmem_cache_alloc 5.x", []string{"call_site", "ptr", "bytes_req", "bytes_alloc", "gfp_flags"}, ktraceRoles{CallSite: 0, Ptr: 1, BytesReq: 2, BytesAlloc: 3, Cache: -1}},
		{"kfree", []string{"call_site", "ptr"}, ktraceRoles{CallSite: 0, Ptr: 1, BytesReq: -1, BytesAlloc: -1, Cache: -1}},
	} {
		got, err := resolveRoles(c.args, []string{"ptr"})
		if err != nil || got != c.want {
			t.Errorf("%s: resolveRoles = %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	_, err := resolveRoles([]string{"call_site", "object"}, []string{"ptr"})
	if err == nil || err.Error() != "its arguments (call_site, object) lack ptr" {
		t.Errorf("resolveRoles without ptr: %v", err)
	}
}

// TestPlanLiveKernel reads this machine's BTF: Linux 6.18 has every event
// but the two merged into kmalloc and kmem_cache_alloc in 6.1.
func TestPlanLiveKernel(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	args, ok := tracepointArgs(spec, "kmalloc")
	if !ok || strings.Join(args, ",") != "call_site,ptr,bytes_req,bytes_alloc,gfp_flags,node" {
		t.Fatalf("kmalloc arguments = %v (%v)", args, ok)
	}
	statuses, _ := plan(spec)
	var missing []string
	for _, st := range statuses {
		if !st.Attached {
			missing = append(missing, st.Name)
		}
	}
	if got := strings.Join(missing, ","); got != "kmem:kmalloc_node,kmem:kmem_cache_alloc_node" {
		t.Errorf("not planned: %s; want only the two legacy _node events", got)
	}
}

// TestPlanNoTracepoints: BTF without any tracepoint (a BPF object's own)
// plans nothing and names every event as missing.
func TestPlanNoTracepoints(t *testing.T) {
	spec, err := btf.LoadSpec("ktrace_x86_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	statuses, _ := plan(spec)
	if anyAllocation(statuses) {
		t.Fatal("planned an allocation event from BTF without tracepoints")
	}
	want := "missing: kmem:kmalloc, kmem:kmem_cache_alloc, kmem:kfree, kmem:kmem_cache_free, kmem:mm_page_alloc, kmem:mm_page_free, kmem:mm_page_free_batched, percpu:percpu_alloc_percpu, percpu:percpu_free_percpu"
	if got := missingList(statuses); got != want {
		t.Errorf("missingList = %q\nwant %q", got, want)
	}
}
