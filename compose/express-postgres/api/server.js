const express = require('express');
const { Pool } = require('pg');
const { createClient } = require('redis');

const app = express();
const pool = new Pool({ connectionString: process.env.DATABASE_URL });
const cache = createClient({ url: process.env.REDIS_URL });
cache.on('error', (err) => console.error('redis', err));

app.get('/', async (req, res) => {
  try {
    const hits = await cache.incr('hits');
    const { rows } = await pool.query('SELECT id, title FROM todos ORDER BY id');
    res.json({ hits, todos: rows });
  } catch (err) {
    console.error(err);
    res.status(500).json({ error: err.message });
  }
});

cache.connect().then(() => {
  app.listen(3000, () => console.log('listening on 3000'));
});
