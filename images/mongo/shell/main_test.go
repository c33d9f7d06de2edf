// The shell as compose apps run it, against a real FerretDB (the mongo
// stand-in's server): the binary `go build` makes, the FerretDB binary named
// by $FERRETDB (`cargo xtask test` passes the pinned build; without it these
// tests are skipped), each test on a server of its own in a new folder.
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var shellBinary, importBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mongosh-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shellBinary = filepath.Join(dir, "mongosh")
	build := exec.Command("go", "build", "-o", shellBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the shell:", err)
		os.Exit(1)
	}
	importBinary = filepath.Join(dir, "mongoimport")
	if err := os.Symlink("mongosh", importBinary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server starts FerretDB on SQLite in a new folder, as the stand-in's mongod
// does: with a root user (root/secret, authentication enforced) or without
// authentication. It returns the port.
func server(t *testing.T, auth bool) string {
	t.Helper()
	return serverOn(t, freePort(t), auth)
}

func serverOn(t *testing.T, port string, auth bool) string {
	t.Helper()
	ferretdb := os.Getenv("FERRETDB")
	if ferretdb == "" {
		t.Skip("FERRETDB (a FerretDB v1 binary) is not set: `cargo xtask test` sets it")
	}
	data := t.TempDir()
	args := []string{
		"--handler=sqlite", "--sqlite-url=file:" + data + "/", "--state-dir=" + data,
		"--listen-addr=127.0.0.1:" + port, "--debug-addr=-", "--telemetry=disable", "--log-level=warn",
	}
	if auth {
		args = append(args, "--test-enable-new-auth", "--setup-database=admin",
			"--setup-username=root", "--setup-password=secret")
	}
	cmd := exec.Command(ferretdb, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		if conn, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			conn.Close()
			return port
		}
	}
	t.Fatalf("FerretDB did not listen on %s:\n%s", port, log.String())
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

type result struct {
	stdout, stderr string
	code           int
}

func mongosh(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return run(t, shellBinary, stdin, args...)
}

func run(t *testing.T, binary, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errOut.String(), code}
}

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// An init script as the entrypoint runs it (as root, on the app's database)
// makes the app's user, a collection with an index and documents of every
// common BSON type; the app's user then reads them back.
func TestAnInitScriptSeedsWhatTheAppReads(t *testing.T) {
	port := server(t, true)
	dir := t.TempDir()
	script := write(t, dir, "mongo-init.js", `
db.createUser({ user: process.env.APP_USER, pwd: 'app-secret', roles: [{ role: 'readWrite', db: 'app' }] });
db.createCollection('items');
db.items.createIndex({ name: 1 }, { unique: true });
db.items.insertMany([
  { _id: 1, name: 'apple', price: 1.5, tags: ['fruit', 'red'], added: ISODate('2024-01-02T03:04:05Z') },
  { _id: 2, name: 'pear', qty: NumberLong(10), big: 12345678901, ok: true, none: null },
  { _id: 3, name: 'id', ref: ObjectId('65a1b2c3d4e5f60718293a4b'), uuid: UUID('0123456789abcdef0123456789abcdef') },
]);
db.items.updateOne({ name: 'pear' }, { $set: { price: 3 } });
print('seeded', db.items.countDocuments({}), 'items in', db.getName());
`)
	run := exec.Command(shellBinary, "--host", "127.0.0.1", "--port", port, "--quiet",
		"--username=root", "--password=secret", "--authenticationDatabase=admin", "app", script)
	run.Env = append(os.Environ(), "APP_USER=app")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("init script: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "seeded 3 items in app") {
		t.Errorf("init script said:\n%s", out)
	}
	if !strings.Contains(string(out), "roles are not kept") {
		t.Errorf("dropping the roles FerretDB refuses was not said:\n%s", out)
	}

	r := mongosh(t, "", "--quiet", "mongodb://app:app-secret@127.0.0.1:"+port+"/app",
		"--eval", "db.items.find({}, { _id: 0 }).sort({ _id: 1 }).toArray()")
	want := `[
  {
    name: 'apple',
    price: 1.5,
    tags: [ 'fruit', 'red' ],
    added: ISODate('2024-01-02T03:04:05.000Z')
  },
  {
    name: 'pear',
    qty: Long('10'),
    big: 12345678901,
    ok: true,
    none: null,
    price: 3
  },
  {
    name: 'id',
    ref: ObjectId('65a1b2c3d4e5f60718293a4b'),
    uuid: UUID('01234567-89ab-cdef-0123-456789abcdef')
  }
]
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("read back (exit %d):\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}

	// The unique index holds: a duplicate is MongoDB's E11000, catchable.
	r = mongosh(t, "", "--quiet", "mongodb://app:app-secret@127.0.0.1:"+port+"/app", "--eval",
		`try { db.items.insertOne({ name: 'apple' }); 'inserted' } catch (e) { e.name + ' ' + e.code }`)
	if strings.TrimSpace(r.stdout) != "MongoServerError 11000" {
		t.Errorf("duplicate insert: %+v", r)
	}
}

// Healthchecks: mongosh's ping by --eval and by standard input, with and
// without credentials; a wrong password and a server that is not there fail
// at once with mongosh's words.
func TestHealthchecksPing(t *testing.T) {
	port := server(t, true)
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"--port", port, "--quiet", "--eval", "db.adminCommand('ping')"}, "{ ok: 1 }\n"},
		{"", []string{"--port", port, "-u", "root", "-p", "secret", "--quiet", "--eval", "db.runCommand({ ping: 1 }).ok"}, "1\n"},
		{"db.runCommand('ping').ok\n", []string{"127.0.0.1:" + port + "/test", "--quiet"}, "1\n"},
	} {
		if r := mongosh(t, tc.stdin, tc.args...); r.code != 0 || r.stdout != tc.want {
			t.Errorf("mongosh %v: %+v, want %q", tc.args, r, tc.want)
		}
	}
	r := mongosh(t, "", "--port", port, "-u", "root", "-p", "wrong", "--quiet", "--eval", "1")
	if r.code != 1 || r.stderr != "MongoServerError: Authentication failed.\n" {
		t.Errorf("wrong password: %+v", r)
	}
	closed := freePort(t)
	start := time.Now()
	r = mongosh(t, "", "--port", closed, "--quiet", "--eval", "db.adminCommand('ping')")
	if r.code != 1 || r.stderr != "MongoNetworkError: connect ECONNREFUSED 127.0.0.1:"+closed+"\n" {
		t.Errorf("no server: %+v", r)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("no server: failed after %s, not at once", time.Since(start))
	}
}

// Without MONGO_INITDB_ROOT_* FerretDB keeps no users: an init script's
// createUser says so and the script goes on; clients need no login.
func TestWithoutAuthenticationUsersAreNotKept(t *testing.T) {
	port := server(t, false)
	dir := t.TempDir()
	script := write(t, dir, "init.js", `
db.createUser({ user: 'app', pwd: 'pw', roles: ['readWrite'] });
db.notes.insertOne({ text: 'kept' });
`)
	r := mongosh(t, "", "--port", port, "--quiet", "app", script)
	if r.code != 0 || !strings.Contains(r.stderr, "user app not created: the server runs without authentication") {
		t.Fatalf("init script: %+v", r)
	}
	r = mongosh(t, "", "--port", port, "--quiet", "app", "--eval", "db.notes.findOne({}, { _id: 0 }).text")
	if r.stdout != "kept\n" {
		t.Errorf("read back: %+v", r)
	}
}

// mongosh's shell commands and Node.js's fs in scripts: `use`, `show
// collections`, load() beside the script, require('fs') reading JSON.
func TestShellCommandsAndFiles(t *testing.T) {
	port := server(t, false)
	dir := t.TempDir()
	write(t, dir, "data.json", `[{"k": "a"}, {"k": "b"}]`)
	write(t, dir, "helpers.js", `function seeded() { return db.kv.countDocuments(); }`)
	script := write(t, dir, "seed.js", `
use shop
const docs = JSON.parse(require('fs').readFileSync('`+dir+`/data.json', 'utf8'));
db.kv.insertMany(docs);
load('helpers.js');
print(db.getName(), seeded());
show collections
for (const d of db.kv.find().sort({ k: -1 })) print(d.k);
`)
	r := mongosh(t, "", "--port", port, "--quiet", script)
	if want := "shop 2\nkv\nb\na\n"; r.code != 0 || r.stdout != want {
		t.Errorf("seed.js: %+v, want stdout %q", r, want)
	}
}

// An uncaught error ends the shell with status 1 and mongosh's one line.
func TestUncaughtErrorsExit1(t *testing.T) {
	for _, tc := range []struct{ eval, want string }{
		{"throw new Error('boom')", "Error: boom\n"},
		{"a b", "SyntaxError: <eval>: Line 1:3 Unexpected identifier\n"},
		{"nosuch.thing", "ReferenceError: nosuch is not defined\n"},
	} {
		r := mongosh(t, "", "--nodb", "--quiet", "--eval", tc.eval)
		if r.code != 1 || r.stderr != tc.want {
			t.Errorf("--eval %q: %+v, want stderr %q", tc.eval, r, tc.want)
		}
	}
	if r := mongosh(t, "", "--bogus"); r.code != 1 || r.stderr != "MongoshInvalidInputError: unknown option --bogus\n" {
		t.Errorf("--bogus: %+v", r)
	}
}

// mongoimport, as seeding services run it: JSON lines, a JSON array into a
// dropped collection (its name from the file's), CSV with a header line
// (dotted names nest, numbers are numbers, blanks left out); an array
// without --jsonArray fails, naming the file and what to add.
func TestMongoimportSeeds(t *testing.T) {
	port := server(t, true)
	dir := t.TempDir()
	lines := write(t, dir, "lines.json", `{"name": "x", "n": 1}
{"name": "y", "n": {"$numberLong": "5"}, "at": {"$date": "2024-01-02T03:04:05Z"}}
`)
	users := write(t, dir, "users.json", `[{"_id": 1, "user": "ann"}, {"_id": 2, "user": "bob"}]`)
	people := write(t, dir, "people.csv", "name,age,addr.city\nann,30,Oslo\nbob,4.5,\n")
	login := []string{"--host", "127.0.0.1:" + port, "-u", "root", "-p", "secret", "--authenticationDatabase", "admin", "-d", "app"}
	for _, args := range [][]string{
		{"-c", "items", "--file", lines},
		{"--jsonArray", "--drop", users},
		{"--jsonArray", "--drop", users},
		{"-c", "people", "--type", "csv", "--headerline", "--ignoreBlanks", people},
	} {
		r := run(t, importBinary, "", append(login, args...)...)
		if r.code != 0 || !strings.Contains(r.stderr, "2 document(s) imported successfully. 0 document(s) failed to import.") {
			t.Fatalf("mongoimport %v: %+v", args, r)
		}
	}
	r := mongosh(t, "", "--quiet", "--port", port, "-u", "root", "-p", "secret", "--authenticationDatabase", "admin", "app",
		"--eval", "[db.items, db.users, db.people].map((c) => c.find({}, c.getName() === 'users' ? {} : { _id: 0 }).toArray())")
	want := `[
  [
    { name: 'x', n: 1 },
    { name: 'y', n: Long('5'), at: ISODate('2024-01-02T03:04:05.000Z') }
  ],
  [ { _id: 1, user: 'ann' }, { _id: 2, user: 'bob' } ],
  [
    { name: 'ann', age: 30, addr: { city: 'Oslo' } },
    { name: 'bob', age: 4.5 }
  ]
]
`
	if r.stdout != want {
		t.Errorf("imported:\n%s\nwant:\n%s\n%s", r.stdout, want, r.stderr)
	}
	r = run(t, importBinary, "", append(login, "-c", "bad", users)...)
	if r.code != 1 || !strings.Contains(r.stderr, "Failed: "+users+": document 1:") || !strings.Contains(r.stderr, "use --jsonArray") {
		t.Errorf("an array without --jsonArray: %+v", r)
	}
}

// A seeding service may start before mongo listens (or while mongo restarts
// after its init scripts): mongoimport waits for the server, as the real
// one's driver does, where mongosh fails at once.
func TestMongoimportWaitsForTheServer(t *testing.T) {
	if os.Getenv("FERRETDB") == "" {
		t.Skip("FERRETDB (a FerretDB v1 binary) is not set: `cargo xtask test` sets it")
	}
	port := freePort(t)
	seed := write(t, t.TempDir(), "seed.json", `{"n": 1}`)
	done := make(chan result)
	go func() {
		done <- run(t, importBinary, "", "--host", "127.0.0.1", "--port", port, "-d", "app", "-c", "seed", seed)
	}()
	time.Sleep(2 * time.Second)
	serverOn(t, port, false)
	r := <-done
	if r.code != 0 || !strings.Contains(r.stderr, "1 document(s) imported successfully") {
		t.Errorf("mongoimport before the server: %+v", r)
	}
}
