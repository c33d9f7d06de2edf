// Run by the mongo image's entrypoint on a new data folder, as upstream runs
// /docker-entrypoint-initdb.d/*.js: with mongosh, on MONGO_INITDB_DATABASE,
// as the root user. The app logs in as the user made here and answers only
// when it finds the greeting.
db.createUser({
  user: process.env.APP_USER,
  pwd: process.env.APP_PASSWORD,
  roles: [{ role: 'readWrite', db: db.getName() }],
});
db.createCollection('greetings');
db.greetings.insertOne({ text: 'seeded by mongo-init.js', at: new Date() });
db.greetings.createIndex({ text: 1 }, { unique: true });
print(`mongo-init.js: ${db.greetings.countDocuments()} greeting(s) in ${db.getName()}`);
