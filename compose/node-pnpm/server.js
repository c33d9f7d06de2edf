const express = require("express");
const { MongoClient } = require("mongodb");
const client = new MongoClient(process.env.MONGO_URL);
const app = express();
app.get("/", async (req, res) => {
  try {
    await client.connect();
    const c = client.db().collection("visits");
    await c.insertOne({ at: new Date() });
    res.json({ visits: await c.countDocuments() });
  } catch (e) { res.status(500).send(String(e)); }
});
app.listen(3000);
