// A small express app: its page says which Node.js and which user serve it.
const express = require("express");
const os = require("os");

const app = express();
const port = Number(process.env.PORT || 3000);

app.get("/", (_req, res) => {
  res.type("text/plain").send(`hello from node ${process.version} as ${os.userInfo().username}\n`);
});

app.listen(port, () => console.log(`listening on ${port}`));
