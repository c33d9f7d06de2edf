// An express app that hashes and checks a password with bcrypt's native
// addon (bcrypt_lib.node, built in the image): 200 when both agree.
const bcrypt = require("bcrypt");
const express = require("express");

const app = express();
const port = Number(process.env.PORT || 3000);

app.get("/", (_req, res) => {
  const hash = bcrypt.hashSync("hunter2", 4);
  if (bcrypt.compareSync("hunter2", hash) && !bcrypt.compareSync("hunter3", hash)) {
    res.type("text/plain").send(`bcrypt's native addon checked a password (${hash.slice(0, 7)}...)\n`);
  } else {
    res.status(500).type("text/plain").send("bcrypt's addon gave a wrong answer\n");
  }
});

app.listen(port, () => console.log(`listening on ${port}`));
