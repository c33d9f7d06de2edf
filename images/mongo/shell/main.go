// Command mongosh is the mongo stand-in's MongoDB shell (also run as `mongo`):
// the JavaScript shell compose apps call in /docker-entrypoint-initdb.d/*.js,
// healthchecks and seeding scripts, on goja (an ECMAScript engine in Go) and
// MongoDB's Go driver. It takes mongosh's command line: a connection string
// or [host[:port]/]db, --host, --port, -u/-p, --authenticationDatabase,
// --eval, --quiet, --nodb and script files, and gives scripts mongosh's
// API (db, db.<collection>, cursors, createUser, BSON types, use, print,
// printjson, process.env, load); shell.js implements that API over one
// primitive, running a command on the server.
package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dop251/goja"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

//go:embed shell.js
var shellJS string

// version is what version() and the banner report.
const version = "2.3.0 (linuxkit-compose mongo stand-in: goja and MongoDB's Go driver, not MongoDB's mongosh)"

// args is the shell's command line.
type args struct {
	address  string // a connection string, or [host[:port]/]db
	host     string
	port     string
	user     string
	password string
	authDB   string
	mech     string
	evals    []string
	files    []string
	quiet    bool
	nodb     bool
}

// valueOptions take a value (--opt value or --opt=value); the ones the shell
// does not use are accepted and ignored, as they only tune the connection.
var valueOptions = map[string]bool{
	"--host": true, "--port": true, "-u": true, "--username": true, "-p": true, "--password": true,
	"--authenticationDatabase": true, "--authenticationMechanism": true, "--eval": true, "-f": true,
	"--file": true, "--apiVersion": true, "--tlsCAFile": true, "--tlsCertificateKeyFile": true,
	"--tlsCertificateKeyFilePassword": true, "--sslCAFile": true, "--sslPEMKeyFile": true,
	"--awsAccessKeyId": true, "--awsSecretAccessKey": true, "--awsSessionToken": true,
	"--gssapiServiceName": true, "--sspiHostnameCanonicalization": true, "--json": false,
}

var flagOptions = map[string]bool{
	"--quiet": true, "--nodb": true, "--norc": true, "--shell": true, "--verbose": true,
	"--tls": true, "--ssl": true, "--retryWrites": true, "--apiStrict": true,
	"--apiDeprecationErrors": true, "--tlsAllowInvalidCertificates": true,
	"--tlsAllowInvalidHostnames": true, "--ipv6": true, "--json": true, "--json=relaxed": true,
	"--json=canonical": true,
}

// nextValue is the word after option name at list[*i], which it consumes.
func nextValue(list []string, i *int, name string) (string, error) {
	if *i+1 >= len(list) {
		return "", fmt.Errorf("option %s needs a value", name)
	}
	*i++
	return list[*i], nil
}

func parseArgs(list []string) (args, error) {
	var a args
	var err error
	for i := 0; i < len(list); i++ {
		arg := list[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if strings.HasSuffix(arg, ".js") {
				a.files = append(a.files, arg)
			} else if a.address == "" {
				a.address = arg
			} else {
				return a, fmt.Errorf("more than one connection string given: %q and %q", a.address, arg)
			}
			continue
		}
		name, value, hasValue := strings.Cut(arg, "=")
		if flagOptions[arg] {
			switch arg {
			case "--quiet":
				a.quiet = true
			case "--nodb":
				a.nodb = true
			}
			continue
		}
		if !valueOptions[name] {
			return a, fmt.Errorf("unknown option %s", arg)
		}
		if !hasValue {
			if value, err = nextValue(list, &i, name); err != nil {
				return a, err
			}
		}
		switch name {
		case "--host":
			a.host = value
		case "--port":
			a.port = value
		case "-u", "--username":
			a.user = value
		case "-p", "--password":
			a.password = value
		case "--authenticationDatabase":
			a.authDB = value
		case "--authenticationMechanism":
			a.mech = value
		case "--eval":
			a.evals = append(a.evals, value)
		case "-f", "--file":
			a.files = append(a.files, value)
		}
	}
	return a, nil
}

// connection is the URI to connect to, the database `db` starts on and
// whether that database was named (it is then the default authSource).
func (a args) connection() (uri string, database string, named bool, err error) {
	database = "test"
	address := a.address
	host := a.host
	if strings.HasPrefix(host, "mongodb://") || strings.HasPrefix(host, "mongodb+srv://") {
		address, host = host, ""
	}
	if strings.HasPrefix(address, "mongodb://") || strings.HasPrefix(address, "mongodb+srv://") {
		u, err := url.Parse(address)
		if err != nil {
			return "", "", false, fmt.Errorf("invalid connection string %q: %w", address, err)
		}
		if d := strings.TrimPrefix(u.Path, "/"); d != "" {
			database, named = d, true
		}
		return address, database, named, nil
	}
	if address != "" {
		// host/db, host:port (no database) or db.
		if h, d, ok := strings.Cut(address, "/"); ok {
			host, database, named = h, d, d != ""
		} else if strings.Contains(address, ":") {
			host = address
		} else {
			database, named = address, true
		}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if rs, hosts, ok := strings.Cut(host, "/"); ok {
		// --host replicaSet/host1,host2
		return fmt.Sprintf("mongodb://%s/?replicaSet=%s", hosts, url.QueryEscape(rs)), database, named, nil
	}
	if a.port != "" && !strings.Contains(host, ",") {
		host = strings.Split(host, ":")[0] + ":" + a.port
	}
	return fmt.Sprintf("mongodb://%s/?directConnection=true", host), database, named, nil
}

type shell struct {
	vm        *goja.Runtime
	clients   []*mongo.Client
	uris      []string
	scripts   []string // the files being run, innermost last (load() resolves against it)
	defaultDB string
	// patient: wait for a server that is not there yet, as mongoimport
	// (the Go driver's 30 s) does, rather than fail at once as mongosh.
	patient bool
}

func (s *shell) connect(uri string, cred *options.Credential) (int, error) {
	opts := options.Client().ApplyURI(uri).SetMaxPoolSize(1).SetAppName(filepath.Base(os.Args[0]))
	if opts.ServerSelectionTimeout == nil && !s.patient {
		opts.SetServerSelectionTimeout(10 * time.Second)
	}
	if cred != nil {
		opts.SetAuth(*cred)
	}
	if err := opts.Validate(); err != nil {
		return 0, fmt.Errorf("MongoParseError: %v", err)
	}
	// The driver retries an address that refuses until the selection
	// timeout; mongosh says at once that nothing listens there.
	if len(opts.Hosts) == 1 && !strings.HasPrefix(uri, "mongodb+srv://") && !s.patient {
		addr := opts.Hosts[0]
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "27017")
		}
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return 0, err
		}
		conn.Close()
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return 0, err
	}
	// mongosh checks the connection before it runs anything.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		_ = client.Disconnect(context.Background())
		return 0, err
	}
	s.clients = append(s.clients, client)
	s.uris = append(s.uris, redact(uri))
	return len(s.clients) - 1, nil
}

func redact(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return uri
}

// errorName is how mongosh names a failure of the driver.
func errorName(err error) (string, string, bson.M) {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return "MongoServerError", ce.Message, bson.M{"code": ce.Code, "codeName": ce.Name}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return "MongoNetworkError", "connect ECONNREFUSED " + refusedAddr(msg), nil
	case strings.Contains(msg, "no such host"):
		return "MongoNetworkError", "getaddrinfo ENOTFOUND " + lookupName(msg), nil
	case strings.Contains(msg, "AuthenticationFailed") || strings.Contains(msg, "auth error"):
		return "MongoServerError", "Authentication failed.", bson.M{"code": 18, "codeName": "AuthenticationFailed"}
	case mongo.IsTimeout(err) || strings.Contains(msg, "server selection"):
		return "MongoServerSelectionError", msg, nil
	case mongo.IsNetworkError(err):
		return "MongoNetworkError", msg, nil
	}
	if name, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(name, "Mongo") {
		return name, rest, nil
	}
	return "MongoError", msg, nil
}

func lookupName(msg string) string {
	if _, rest, ok := strings.Cut(msg, "lookup "); ok {
		return strings.Fields(rest)[0]
	}
	return ""
}

func refusedAddr(msg string) string {
	if _, rest, ok := strings.Cut(msg, "dial tcp "); ok {
		if addr, _, ok := strings.Cut(rest, ":"+" connect"); ok {
			return addr
		}
		return strings.Fields(rest)[0]
	}
	return ""
}

// throw raises err in the script as the error mongosh would throw.
func (s *shell) throw(err error) {
	name, msg, props := errorName(err)
	make, _ := goja.AssertFunction(s.vm.Get("__makeError"))
	e, jsErr := make(goja.Undefined(), s.vm.ToValue(name), s.vm.ToValue(msg), s.vm.ToValue(map[string]any(props)))
	if jsErr != nil {
		panic(s.vm.NewGoError(err))
	}
	panic(e)
}

func (s *shell) client(id int64) *mongo.Client {
	if id < 0 || int(id) >= len(s.clients) {
		s.throw(errors.New("MongoshInvalidInputError: not connected: this shell was started with --nodb"))
	}
	return s.clients[id]
}

// command runs a command (canonical Extended JSON) on database db and returns
// the reply, as canonical Extended JSON.
func (s *shell) command(id int64, db, doc string) string {
	var cmd bson.D
	if err := bson.UnmarshalExtJSON([]byte(doc), true, &cmd); err != nil {
		s.throw(fmt.Errorf("BSONError: %v", err))
	}
	raw, err := s.client(id).Database(db).RunCommand(context.Background(), cmd).Raw()
	var we mongo.WriteException
	if errors.As(err, &we) && len(we.Raw) > 0 {
		// A write's errors are in its reply, which the script sees (as
		// db.runCommand returns it in mongosh); the collection methods
		// throw for them.
		raw, err = we.Raw, nil
	}
	if err != nil {
		s.throw(err)
	}
	out, err := bson.MarshalExtJSON(raw, true, false)
	if err != nil {
		s.throw(fmt.Errorf("BSONError: %v", err))
	}
	return string(out)
}

// run evaluates a script (mongosh's shell commands allowed) and returns its
// completion value.
func (s *shell) run(name, source string) (goja.Value, error) {
	rewrite, _ := goja.AssertFunction(s.vm.Get("__rewrite"))
	js, err := rewrite(goja.Undefined(), s.vm.ToValue(source))
	if err != nil {
		return nil, err
	}
	return s.vm.RunScript(name, js.String())
}

func (s *shell) load(path string) {
	if !filepath.IsAbs(path) && len(s.scripts) > 0 {
		beside := filepath.Join(filepath.Dir(s.scripts[len(s.scripts)-1]), path)
		if _, err := os.Stat(beside); err == nil {
			path = beside
		}
	}
	source, err := os.ReadFile(path)
	if err != nil {
		s.throw(fmt.Errorf("Error: File not found: %s", path))
	}
	s.scripts = append(s.scripts, path)
	defer func() { s.scripts = s.scripts[:len(s.scripts)-1] }()
	if _, err := s.run(path, string(source)); err != nil {
		var ex *goja.Exception
		if errors.As(err, &ex) {
			panic(ex.Value())
		}
		panic(s.vm.NewGoError(err))
	}
}

func (s *shell) show(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return ""
	}
	if _, ok := v.Export().(string); ok {
		return v.String()
	}
	inspect, _ := goja.AssertFunction(s.vm.Get("__inspect"))
	text, err := inspect(goja.Undefined(), v)
	if err != nil {
		return v.String()
	}
	return text.String()
}

// describe is an uncaught exception as mongosh prints it.
func (s *shell) describe(err error) string {
	var ex *goja.Exception
	if errors.As(err, &ex) {
		if obj, ok := ex.Value().(*goja.Object); ok && obj.Get("name") != nil && obj.Get("message") != nil {
			name, msg := obj.Get("name").String(), obj.Get("message").String()
			if strings.HasPrefix(msg, name+": ") {
				return msg
			}
			return name + ": " + msg
		}
		return "Uncaught " + ex.Value().String()
	}
	return err.Error()
}

func (s *shell) bindings(a args, nodb bool) *goja.Object {
	vm := s.vm
	g := vm.NewObject()
	set := func(name string, v any) {
		if err := g.Set(name, v); err != nil {
			panic(err)
		}
	}
	env := vm.NewObject()
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			_ = env.Set(k, v)
		}
	}
	set("env", env)
	set("argv", append([]string{"mongosh"}, os.Args[1:]...))
	set("version", version)
	set("nodb", nodb)
	set("defaultDB", s.defaultDB)
	set("command", s.command)
	set("connect", func(uri string) int {
		id, err := s.connect(uri, nil)
		if err != nil {
			s.throw(err)
		}
		return id
	})
	set("uriDB", func(uri string) string {
		u, err := url.Parse(uri)
		if err != nil || strings.TrimPrefix(u.Path, "/") == "" {
			return "test"
		}
		return strings.TrimPrefix(u.Path, "/")
	})
	set("uri", func(id int64) string {
		if id < 0 || int(id) >= len(s.uris) {
			return ""
		}
		return s.uris[id]
	})
	set("auth", func(id int64, db, user, password, mech string) {
		uri := s.uris[id]
		client, err := s.connect(uri, &options.Credential{Username: user, Password: password, AuthSource: db, AuthMechanism: mech})
		if err != nil {
			s.throw(err)
		}
		old := s.clients[id]
		s.clients[id] = s.clients[client]
		s.clients = s.clients[:client]
		s.uris = s.uris[:client]
		_ = old.Disconnect(context.Background())
	})
	set("objectId", func() string { return bson.NewObjectID().Hex() })
	set("randomUUID", func() string {
		var b [16]byte
		f, err := os.Open("/dev/urandom")
		if err == nil {
			_, err = io.ReadFull(f, b[:])
			f.Close()
		}
		if err != nil {
			s.throw(fmt.Errorf("Error: no random bytes: %v", err))
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		return hex.EncodeToString(b[:])
	})
	set("base64ToHex", func(b string) string {
		raw, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			s.throw(fmt.Errorf("BSONError: invalid base64: %v", err))
		}
		return hex.EncodeToString(raw)
	})
	set("hexToBase64", func(h string) string {
		raw, err := hex.DecodeString(h)
		if err != nil {
			s.throw(fmt.Errorf("BSONError: invalid hex: %v", err))
		}
		return base64.StdEncoding.EncodeToString(raw)
	})
	set("out", func(line string) { fmt.Fprintln(os.Stdout, line) })
	set("err", func(line string) { fmt.Fprintln(os.Stderr, line) })
	set("readFile", func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			s.throw(fmt.Errorf("Error: %v", err))
		}
		return string(b)
	})
	set("exists", func(path string) bool { _, err := os.Stat(path); return err == nil })
	set("readDir", func(path string) []string {
		entries, err := os.ReadDir(path)
		if err != nil {
			s.throw(fmt.Errorf("Error: %v", err))
		}
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		return names
	})
	set("resolve", func(parts []string) string {
		p, _ := filepath.Abs(filepath.Join(parts...))
		return p
	})
	set("hostname", func() string { h, _ := os.Hostname(); return h })
	set("quit", func(code goja.Value) {
		n := 0
		if code != nil && !goja.IsUndefined(code) {
			n = int(code.ToInteger())
		}
		os.Exit(n)
	})
	set("sleep", func(ms int64) { time.Sleep(time.Duration(ms) * time.Millisecond) })
	set("load", s.load)
	return g
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}

func main() {
	if filepath.Base(os.Args[0]) == "mongoimport" {
		os.Exit(mongoimport(os.Args[1:]))
	}
	a, err := parseArgs(os.Args[1:])
	if err != nil {
		fail("MongoshInvalidInputError: %v", err)
	}
	s := &shell{vm: goja.New()}
	s.vm.SetFieldNameMapper(goja.UncapFieldNameMapper())
	uri, database, named, err := a.connection()
	if err != nil {
		fail("MongoshInvalidInputError: %v", err)
	}
	s.defaultDB = database
	if !a.nodb {
		var cred *options.Credential
		if a.user != "" {
			source := a.authDB
			if source == "" && !named {
				source = "admin"
			} else if source == "" {
				source = database
			}
			cred = &options.Credential{Username: a.user, Password: a.password, AuthSource: source, AuthMechanism: a.mech}
		}
		if !a.quiet {
			fmt.Printf("Connecting to:\t\t%s\n", redact(uri))
		}
		if _, err := s.connect(uri, cred); err != nil {
			name, msg, _ := errorName(err)
			fail("%s: %s", name, msg)
		}
		if !a.quiet {
			var info bson.M
			if s.clients[0].Database("admin").RunCommand(context.Background(), bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info) == nil {
				fmt.Printf("Using MongoDB:\t\t%v\n", info["version"])
			}
			fmt.Printf("Using Mongosh:\t\t%s\n\n", version)
		}
	}
	if err := s.vm.Set("__go", s.bindings(a, a.nodb)); err != nil {
		fail("%v", err)
	}
	if _, err := s.vm.RunScript("shell.js", shellJS); err != nil {
		fail("mongosh: starting the shell: %v", err)
	}

	for _, source := range a.evals {
		v, err := s.run("<eval>", source)
		if err != nil {
			fail("%s", s.describe(err))
		}
		if text := s.show(v); text != "" {
			fmt.Println(text)
		}
	}
	for _, file := range a.files {
		source, err := os.ReadFile(file)
		if err != nil {
			fail("Error: File not found: %s", file)
		}
		s.scripts = []string{file}
		if !a.quiet {
			fmt.Printf("Loading file: %s\n", file)
		}
		if _, err := s.run(file, string(source)); err != nil {
			fail("%s", s.describe(err))
		}
	}
	if len(a.evals) > 0 || len(a.files) > 0 {
		return
	}
	if st, err := os.Stdin.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		s.repl()
		return
	}
	source, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("Error: reading standard input: %v", err)
	}
	v, err := s.run("<stdin>", string(source))
	if err != nil {
		fail("%s", s.describe(err))
	}
	if text := s.show(v); text != "" {
		fmt.Println(text)
	}
}

// repl reads statements a line at a time and prints each one's value.
func (s *shell) repl() {
	in := bufio.NewReader(os.Stdin)
	for {
		name := "test"
		if db := s.vm.Get("db"); db != nil && !goja.IsUndefined(db) {
			name = db.String()
		}
		fmt.Printf("%s> ", name)
		line, err := in.ReadString('\n')
		if err != nil && line == "" {
			fmt.Println()
			return
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		v, err := s.run("<repl>", line)
		if err != nil {
			fmt.Fprintln(os.Stderr, s.describe(err))
			continue
		}
		if text := s.show(v); text != "" {
			fmt.Println(text)
		}
	}
}
