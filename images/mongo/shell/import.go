// mongoimport: the same binary run by that name, for the seeding services
// compose apps put beside mongo (`mongoimport --host mongo --db app
// --collection users --file /seed/users.json --jsonArray`). It takes
// mongoimport's common options: --uri or --host/--port, -u/-p,
// --authenticationDatabase, -d, -c (the file's name without its extension
// when not given), --file or the file as an operand (else standard input),
// --type json|csv|tsv, --jsonArray, --headerline, -f/--fields, --fieldFile,
// --ignoreBlanks, --drop, --mode insert|upsert|merge|delete with
// --upsertFields, --stopOnError; JSON is Extended JSON, relaxed or canonical.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

type importArgs struct {
	uri, host, port          string
	user, password, authDB   string
	mech                     string
	db, collection           string
	file, kind, fieldFile    string
	fields, upsertFields     []string
	jsonArray, headerline    bool
	drop, ignoreBlanks, stop bool
	mode                     string
}

func parseImportArgs(list []string) (importArgs, error) {
	a := importArgs{kind: "json", mode: "insert"}
	flags := map[string]*bool{
		"--jsonArray": &a.jsonArray, "--headerline": &a.headerline, "--drop": &a.drop,
		"--ignoreBlanks": &a.ignoreBlanks, "--stopOnError": &a.stop,
	}
	ignored := map[string]bool{
		"--quiet": true, "-v": true, "--verbose": true, "--maintainInsertionOrder": true,
		"--ssl": true, "--tls": true, "--legacy": true, "--columnsHaveTypes": true,
	}
	values := map[string]*string{
		"--uri": &a.uri, "-h": &a.host, "--host": &a.host, "--port": &a.port,
		"-u": &a.user, "--username": &a.user, "-p": &a.password, "--password": &a.password,
		"--authenticationDatabase": &a.authDB, "--authenticationMechanism": &a.mech,
		"-d": &a.db, "--db": &a.db, "-c": &a.collection, "--collection": &a.collection,
		"--file": &a.file, "--type": &a.kind, "--fieldFile": &a.fieldFile, "--mode": &a.mode,
	}
	lists := map[string]*[]string{"-f": &a.fields, "--fields": &a.fields, "--upsertFields": &a.upsertFields}
	ignoredValues := map[string]bool{
		"-j": true, "--numInsertionWorkers": true, "--writeConcern": true, "--parseGrace": true,
		"--batchSize": true, "--tlsCAFile": true, "--sslCAFile": true,
	}
	var err error
	for i := 0; i < len(list); i++ {
		arg := list[i]
		if !strings.HasPrefix(arg, "-") {
			if a.file != "" {
				return a, fmt.Errorf("more than one file given: %q and %q", a.file, arg)
			}
			a.file = arg
			continue
		}
		name, value, hasValue := strings.Cut(arg, "=")
		if p, ok := flags[name]; ok && !hasValue {
			*p = true
			continue
		}
		if ignored[name] || strings.HasPrefix(name, "-vv") {
			continue
		}
		dest, isValue := values[name]
		list2, isList := lists[name]
		if !isValue && !isList && !ignoredValues[name] {
			return a, fmt.Errorf("unknown option %s", arg)
		}
		if !hasValue {
			if value, err = nextValue(list, &i, name); err != nil {
				return a, err
			}
		}
		switch {
		case isValue:
			*dest = value
		case isList:
			for _, f := range strings.Split(value, ",") {
				*list2 = append(*list2, strings.TrimSpace(f))
			}
		}
	}
	switch a.kind {
	case "json", "csv", "tsv":
	default:
		return a, fmt.Errorf("unknown type %q (json, csv or tsv)", a.kind)
	}
	switch a.mode {
	case "insert", "upsert", "merge", "delete":
	default:
		return a, fmt.Errorf("unknown mode %q (insert, upsert, merge or delete)", a.mode)
	}
	if a.kind == "json" && (a.headerline || len(a.fields) > 0) {
		return a, errors.New("--headerline and --fields are for csv and tsv")
	}
	if a.kind != "json" && !a.headerline && len(a.fields) == 0 && a.fieldFile == "" {
		return a, errors.New("csv and tsv need --headerline, --fields or --fieldFile")
	}
	return a, nil
}

// connection is the URI and database mongoimport connects to.
func (a importArgs) connection() (string, string, error) {
	database := a.db
	if a.uri != "" {
		_, named, _, err := (args{address: a.uri}).connection()
		if err != nil {
			return "", "", err
		}
		if database == "" {
			database = named
		}
		return a.uri, database, nil
	}
	host := a.host
	if host == "" {
		host = "localhost"
	}
	uri, _, _, err := (args{host: host, port: a.port}).connection()
	if database == "" {
		database = "test"
	}
	return uri, database, err
}

// documents reads the input as documents, in order.
func (a importArgs) documents(in io.Reader) ([]bson.D, error) {
	if a.kind == "json" {
		return jsonDocuments(in, a.jsonArray)
	}
	fields := a.fields
	if a.fieldFile != "" {
		text, err := os.ReadFile(a.fieldFile)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(text), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				fields = append(fields, line)
			}
		}
	}
	r := csv.NewReader(in)
	if a.kind == "tsv" {
		r.Comma = '\t'
		r.LazyQuotes = true
	}
	r.FieldsPerRecord = -1
	var docs []bson.D
	for line := 1; ; line++ {
		record, err := r.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if a.headerline && fields == nil {
			fields = record
			continue
		}
		var doc bson.D
		for i, value := range record {
			name := fmt.Sprintf("field%d", i)
			if i < len(fields) {
				name = fields[i]
			}
			if value == "" && a.ignoreBlanks {
				continue
			}
			doc = setPath(doc, strings.Split(name, "."), typed(value))
		}
		docs = append(docs, doc)
	}
}

// typed is a CSV field as mongoimport stores it: a number where it reads as
// one (32 or 64 bits, else a double), else the text.
func typed(value string) any {
	if n, err := strconv.ParseInt(value, 10, 64); err == nil {
		if n >= -1<<31 && n < 1<<31 {
			return int32(n)
		}
		return n
	}
	if f, err := strconv.ParseFloat(value, 64); err == nil && strings.ContainsAny(value, ".eE") {
		return f
	}
	return value
}

// setPath sets a.b.c in doc, making the documents between.
func setPath(doc bson.D, path []string, value any) bson.D {
	for i, e := range doc {
		if e.Key == path[0] {
			if len(path) == 1 {
				doc[i].Value = value
			} else if inner, ok := e.Value.(bson.D); ok {
				doc[i].Value = setPath(inner, path[1:], value)
			}
			return doc
		}
	}
	if len(path) == 1 {
		return append(doc, bson.E{Key: path[0], Value: value})
	}
	return append(doc, bson.E{Key: path[0], Value: setPath(nil, path[1:], value)})
}

// jsonDocuments reads Extended JSON documents, one after another or, with
// array, in one array.
func jsonDocuments(in io.Reader, array bool) ([]bson.D, error) {
	dec := json.NewDecoder(bufio.NewReader(in))
	if array {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading the JSON array: %w", err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, errors.New("--jsonArray: the input does not start with [")
		}
	}
	var docs []bson.D
	for n := 1; dec.More(); n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		var doc bson.D
		if err := bson.UnmarshalExtJSON(raw, false, &doc); err != nil {
			hint := ""
			if strings.HasPrefix(strings.TrimSpace(string(raw)), "[") && !array {
				hint = " (an array: use --jsonArray)"
			}
			return nil, fmt.Errorf("document %d: %v%s", n, err, hint)
		}
		docs = append(docs, doc)
	}
	return docs, nil
}

// filter is the document a mode matches doc by: its _id, or upsertFields.
func (a importArgs) filter(doc bson.D) bson.D {
	keys := a.upsertFields
	if len(keys) == 0 {
		keys = []string{"_id"}
	}
	var f bson.D
	for _, k := range keys {
		for _, e := range doc {
			if e.Key == k {
				f = append(f, e)
			}
		}
	}
	return f
}

func mongoimport(list []string) int {
	a, err := parseImportArgs(list)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error parsing command line options: %v\n", err)
		return 3
	}
	if a.collection == "" && a.file != "" {
		a.collection = strings.TrimSuffix(filepath.Base(a.file), filepath.Ext(a.file))
	}
	if a.collection == "" {
		fmt.Fprintln(os.Stderr, "Failed: no collection specified")
		return 1
	}
	uri, database, err := a.connection()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error parsing command line options: %v\n", err)
		return 3
	}
	in := io.Reader(os.Stdin)
	if a.file != "" {
		f, err := os.Open(a.file)
		if err != nil {
			fmt.Fprintf(os.Stderr, "Failed: open %s: no such file or directory\n", a.file)
			return 1
		}
		defer f.Close()
		in = f
	}
	docs, err := a.documents(in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed: %s: %v\n", a.fileName(), err)
		return 1
	}
	var cred *options.Credential
	if a.user != "" {
		source := a.authDB
		if source == "" {
			source = "admin"
		}
		cred = &options.Credential{Username: a.user, Password: a.password, AuthSource: source, AuthMechanism: a.mech}
	}
	s := &shell{patient: true}
	id, err := s.connect(uri, cred)
	if err != nil {
		name, msg, _ := errorName(err)
		fmt.Fprintf(os.Stderr, "Failed: %s: %s\n", name, msg)
		return 1
	}
	fmt.Fprintf(os.Stderr, "connected to: %s\n", s.uris[id])
	coll := s.clients[id].Database(database).Collection(a.collection)
	ctx := context.Background()
	if a.drop {
		fmt.Fprintf(os.Stderr, "dropping: %s.%s\n", database, a.collection)
		if err := coll.Drop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "Failed: %v\n", err)
			return 1
		}
	}
	imported, failed := 0, 0
	for _, doc := range docs {
		var err error
		switch a.mode {
		case "insert":
			_, err = coll.InsertOne(ctx, doc)
		case "upsert":
			_, err = coll.ReplaceOne(ctx, a.filter(doc), doc, options.Replace().SetUpsert(true))
		case "merge":
			_, err = coll.UpdateOne(ctx, a.filter(doc), bson.D{{Key: "$set", Value: doc}}, options.UpdateOne().SetUpsert(true))
		case "delete":
			_, err = coll.DeleteOne(ctx, a.filter(doc))
		}
		if err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "continuing through error: %v\n", err)
			if a.stop {
				break
			}
			continue
		}
		imported++
	}
	fmt.Fprintf(os.Stderr, "%d document(s) imported successfully. %d document(s) failed to import.\n", imported, failed)
	if failed > 0 && a.stop {
		return 1
	}
	return 0
}

func (a importArgs) fileName() string {
	if a.file == "" {
		return "standard input"
	}
	return a.file
}
