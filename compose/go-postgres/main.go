// A page that counts its visits in postgres: each request inserts a row and
// answers with the count, so a 2xx means the request reached the database.
package main

import (
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"os"

	_ "github.com/lib/pq"
)

func main() {
	db, err := sql.Open("postgres", os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, err := db.Exec("CREATE TABLE IF NOT EXISTS hits (at timestamptz DEFAULT now())"); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		var n int
		if _, err := db.Exec("INSERT INTO hits DEFAULT VALUES"); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if err := db.QueryRow("SELECT count(*) FROM hits").Scan(&n); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "hits: %d\n", n)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
