package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback TCP port nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func requireCommand(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (CI is set: .ci/run installs it)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return path
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRedis runs Debian's redis-server (linked with jemalloc) on a free
// loopback port, without persistence.
func startRedis(t *testing.T) (pid, port int) {
	t.Helper()
	server := requireCommand(t, "redis-server")
	requireCommand(t, "redis-cli")
	port = freePort(t)
	cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", t.TempDir())
	startGroup(t, cmd)
	waitFor(t, "redis to answer PING", func() bool {
		out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(port), "ping").Output()
		return strings.TrimSpace(string(out)) == "PONG"
	})
	return cmd.Process.Pid, port
}

func redisBenchmark(t *testing.T, port, requests int) {
	t.Helper()
	bench := requireCommand(t, "redis-benchmark")
	cmd := exec.Command(bench, "-p", strconv.Itoa(port), "-n", strconv.Itoa(requests), "-c", "8",
		"-r", "100000", "-d", "100", "-q", "-t", "set,get,incr,lpush,rpush,lpop,sadd,hset,zadd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
}

// TestRedisOutstanding traces Debian's redis-server (jemalloc) under
// redis-benchmark, then stores 500 keys with 300-byte values and checks
// the exact blocks they add: 500 value strings of 306 bytes (sds header 5
// + 300 + NUL) and 500 objects of 16 bytes (robj).
func TestRedisOutstanding(t *testing.T) {
	requireRoot(t)
	pid, port := startRedis(t)
	a := attach(t, pid, "--mode", "outstanding", "--format", "json", "--top", "0", "--report-objects", "-i", "1h")
	if !strings.Contains(a.stderr.String(), "libjemalloc.so.2") {
		t.Errorf("probes not in jemalloc: %s", a.stderr.String())
	}
	redisBenchmark(t, port, 3000)
	cli := exec.Command("redis-cli", "-p", strconv.Itoa(port))
	var cmds strings.Builder
	cmds.WriteString("FLUSHALL\n")
	value := strings.Repeat("v", 300)
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&cmds, "SET key:%d %s\n", i, value)
	}
	cli.Stdin = strings.NewReader(cmds.String())
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	if code := a.stop(t); code != 0 {
		t.Fatalf("lsan exit status %d\n%s", code, a.stderr.String())
	}
	reps := parseReports(t, a.stdout.String())
	last := reps[len(reps)-1]
	sizes := map[uint64]int{}
	for _, g := range last.Leaks {
		for _, o := range g.Objects {
			sizes[o.Size]++
		}
	}
	// The 16-byte size is shared with some of redis's own bookkeeping.
	if sizes[306] != 500 || sizes[16] < 500 {
		t.Errorf("blocks of 306 bytes: %d, of 16 bytes: %d; want 500 and at least 500", sizes[306], sizes[16])
	}
	if last.Dropped.Allocs != 0 {
		t.Errorf("dropped allocations: %d", last.Dropped.Allocs)
	}
}

// TestRedisNoFalseLeaks attaches a leak check to redis for more than 10 s,
// checking every 2 s during redis-benchmark load and after it: redis does
// not leak (valgrind agrees), so no check may report a direct leak.
func TestRedisNoFalseLeaks(t *testing.T) {
	requireRoot(t)
	pid, port := startRedis(t)
	a := attach(t, pid, "--format", "json", "-i", "2s")
	start := time.Now()
	redisBenchmark(t, port, 5000)
	time.Sleep(max(4*time.Second, 10*time.Second-time.Since(start)))
	a.stop(t)
	assertNoDirectLeaks(t, parseReports(t, a.stdout.String()), 5, 5000)
}

// assertNoDirectLeaks checks a run of reports: enough checks, enough
// allocations seen by the tracer, and not one direct leak.
func assertNoDirectLeaks(t *testing.T, reps []jsonReport, minChecks int, minAllocs uint64) {
	t.Helper()
	if len(reps) < minChecks {
		t.Errorf("%d checks, want at least %d", len(reps), minChecks)
	}
	for i, r := range reps {
		for _, g := range r.Leaks {
			if g.Kind == "direct" {
				t.Errorf("check %d: false direct leak of %d byte(s) in %d object(s) from %s", i, g.Bytes, g.Count, callSite(g.Stack))
			}
		}
	}
	if allocs := reps[len(reps)-1].Stats.Allocs; allocs < minAllocs {
		t.Errorf("%d allocations tracked, want at least %d: the load did not reach the tracer", allocs, minAllocs)
	}
}

// startNginx runs Debian's nginx (glibc, pool allocator) with one worker
// on a free loopback port and returns the worker's pid: the process that
// serves requests.
func startNginx(t *testing.T) (worker, port int) {
	t.Helper()
	master, port := startNginxWorkers(t, 1)
	waitFor(t, "nginx's worker", func() bool { worker = childOf(master); return worker != 0 })
	return worker, port
}

// startNginxWorkers runs Debian's nginx with a master and n workers on a
// free loopback port and returns the master's pid.
func startNginxWorkers(t *testing.T, n int) (master, port int) {
	t.Helper()
	nginx := requireCommand(t, "nginx")
	dir, err := os.MkdirTemp("", "lsan-nginx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The worker runs as nobody: it must be able to read the document root.
	os.Chmod(dir, 0o755)
	www := filepath.Join(dir, "www")
	os.Mkdir(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.html"), []byte(strings.Repeat("hello lsan\n", 200)), 0o644)
	port = freePort(t)
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes %[3]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d;
    location / { root %[1]s/www; }
    location /missing { return 404; }
  }
}
`, dir, port, n)
	confPath := filepath.Join(dir, "nginx.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	cmd := exec.Command(nginx, "-c", confPath, "-p", dir)
	cmd.Stderr = os.Stderr
	startGroup(t, cmd)
	waitFor(t, "nginx to serve", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return cmd.Process.Pid, port
}

// childOf returns a child process of pid, or 0.
func childOf(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(fields[0])
	return n
}

// httpLoad sends up to n requests to the server on loopback, for at most d.
func httpLoad(t *testing.T, port, n int, d time.Duration) int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(d)
	paths := []string{"/", "/index.html", "/missing", "/?q=" + strings.Repeat("x", 300)}
	done := 0
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, paths[i%len(paths)]))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done++
	}
	return done
}

// TestNginxNoFalseLeaks attaches a leak check to nginx's worker for more
// than 10 s, checking every 2 s during an HTTP load loop and after it.
func TestNginxNoFalseLeaks(t *testing.T) {
	requireRoot(t)
	worker, port := startNginx(t)
	a := attach(t, worker, "--format", "json", "-i", "2s")
	start := time.Now()
	n := httpLoad(t, port, 20000, 6*time.Second)
	if n < 500 {
		t.Errorf("only %d requests served", n)
	}
	time.Sleep(max(4*time.Second, 10*time.Second-time.Since(start)))
	a.stop(t)
	assertNoDirectLeaks(t, parseReports(t, a.stdout.String()), 5, uint64(n))
}
