// The shell's JavaScript side: MongoDB's BSON types, the `db`, collection and
// cursor API of mongosh (and the legacy `mongo` shell) over one primitive,
// __command(client, db, command) -> reply, which main.go runs on the server;
// documents cross that line as canonical Extended JSON, so key order and BSON
// types survive both ways. Output is formatted the way mongosh shows it.
(function (global) {
  'use strict';

  const go = global.__go;
  delete global.__go;

  // --- Errors --------------------------------------------------------------

  function makeError(name, message, props) {
    const e = new Error(message);
    e.name = name;
    Object.assign(e, props || {});
    return e;
  }

  // --- BSON types ----------------------------------------------------------

  // Each type is callable with or without `new`, as in mongosh.
  function ObjectId(id) {
    if (!(this instanceof ObjectId)) return new ObjectId(id);
    if (id === undefined || id === null) id = go.objectId();
    else if (id instanceof ObjectId) id = id.hex;
    else if (typeof id === 'object' && typeof id.$oid === 'string') id = id.$oid;
    if (typeof id !== 'string' || !/^[0-9a-fA-F]{24}$/.test(id)) {
      throw makeError('BSONError', 'input must be a 24 character hex string, 12 byte Uint8Array, or an integer');
    }
    Object.defineProperty(this, 'hex', { value: id.toLowerCase() });
  }
  ObjectId.prototype.toHexString = function () { return this.hex; };
  ObjectId.prototype.toString = function () { return this.hex; };
  ObjectId.prototype.toJSON = function () { return this.hex; };
  ObjectId.prototype.equals = function (o) { return o != null && String(o.hex || o).toLowerCase() === this.hex; };
  ObjectId.prototype.getTimestamp = function () { return new Date(parseInt(this.hex.slice(0, 8), 16) * 1000); };
  ObjectId.prototype.toEJSON = function () { return { $oid: this.hex }; };
  ObjectId.prototype.inspect = function () { return `ObjectId('${this.hex}')`; };
  Object.defineProperty(ObjectId.prototype, 'str', { get() { return this.hex; } });
  ObjectId.isValid = (id) => { try { ObjectId(id); return true; } catch (e) { return false; } };
  ObjectId.createFromHexString = (hex) => new ObjectId(hex);
  ObjectId.createFromTime = (secs) => new ObjectId(('00000000' + Math.floor(secs).toString(16)).slice(-8) + '0000000000000000');

  function Long(value) {
    if (!(this instanceof Long)) return new Long(value);
    const s = typeof value === 'bigint' ? value.toString() : String(value === undefined ? 0 : value);
    if (!/^-?\d+$/.test(s)) {
      if (typeof value === 'number' && Number.isFinite(value)) return new Long(Math.trunc(value));
      throw makeError('BSONError', `${s} is not a 64-bit integer`);
    }
    Object.defineProperty(this, 'value', { value: s.replace(/^(-?)0+(?=\d)/, '$1') });
  }
  Long.prototype.valueOf = function () { return Number(this.value); };
  Long.prototype.toNumber = function () { return Number(this.value); };
  Long.prototype.toString = function () { return this.value; };
  Long.prototype.toJSON = function () { return this.value; };
  Long.prototype.toEJSON = function () { return { $numberLong: this.value }; };
  Long.prototype.inspect = function () { return `Long('${this.value}')`; };
  Long.fromNumber = (n) => new Long(n);
  Long.fromString = (s) => new Long(s);

  function Int32(value) {
    if (!(this instanceof Int32)) return new Int32(value);
    Object.defineProperty(this, 'value', { value: Number(value) | 0 });
  }
  Int32.prototype.valueOf = function () { return this.value; };
  Int32.prototype.toString = function () { return String(this.value); };
  Int32.prototype.toJSON = function () { return this.value; };
  Int32.prototype.toEJSON = function () { return { $numberInt: String(this.value) }; };
  Int32.prototype.inspect = function () { return `Int32(${this.value})`; };

  function Double(value) {
    if (!(this instanceof Double)) return new Double(value);
    Object.defineProperty(this, 'value', { value: Number(value) });
  }
  Double.prototype.valueOf = function () { return this.value; };
  Double.prototype.toString = function () { return String(this.value); };
  Double.prototype.toJSON = function () { return this.value; };
  Double.prototype.toEJSON = function () { return { $numberDouble: doubleString(this.value) }; };
  Double.prototype.inspect = function () { return `Double(${this.value})`; };

  function Decimal128(value) {
    if (!(this instanceof Decimal128)) return new Decimal128(value);
    Object.defineProperty(this, 'value', { value: String(value === undefined ? 0 : value) });
  }
  Decimal128.prototype.toString = function () { return this.value; };
  Decimal128.prototype.toJSON = function () { return { $numberDecimal: this.value }; };
  Decimal128.prototype.toEJSON = function () { return { $numberDecimal: this.value }; };
  Decimal128.prototype.inspect = function () { return `Decimal128('${this.value}')`; };
  Decimal128.fromString = (s) => new Decimal128(s);

  function Binary(base64, subType) {
    if (!(this instanceof Binary)) return new Binary(base64, subType);
    Object.defineProperty(this, 'base64', { value: String(base64) });
    Object.defineProperty(this, 'sub_type', { value: subType === undefined ? 0 : Number(subType) });
  }
  Binary.prototype.toString = function (enc) {
    if (enc === 'hex') return go.base64ToHex(this.base64);
    return this.base64;
  };
  Binary.prototype.toEJSON = function () {
    return { $binary: { base64: this.base64, subType: ('0' + this.sub_type.toString(16)).slice(-2) } };
  };
  Binary.prototype.inspect = function () {
    if (this.sub_type === 4) return `UUID('${uuidString(this)}')`;
    return `Binary.createFromBase64('${this.base64}', ${this.sub_type})`;
  };
  Binary.prototype.toUUID = function () { return this; };
  Binary.prototype.toHexString = function () { return go.base64ToHex(this.base64); };
  Binary.createFromBase64 = (b, s) => new Binary(b, s);
  Binary.createFromHexString = (h, s) => new Binary(go.hexToBase64(h), s);
  function uuidString(bin) {
    const h = go.base64ToHex(bin.base64);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  function UUID(text) {
    const hex = text === undefined ? go.randomUUID() : String(text).replace(/-/g, '');
    if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw makeError('BSONError', `UUID string representation must be 32 hex digits or canonical hyphenated representation, got ${text}`);
    return new Binary(go.hexToBase64(hex), 4);
  }
  function BinData(subType, base64) { return new Binary(base64, subType); }
  function HexData(subType, hex) { return new Binary(go.hexToBase64(hex), subType); }
  function MD5(hex) { return new Binary(go.hexToBase64(hex), 5); }

  function Timestamp(t, i) {
    if (!(this instanceof Timestamp)) return new Timestamp(t, i);
    if (t !== null && typeof t === 'object') { i = t.i; t = t.t; }
    Object.defineProperty(this, 't', { value: Number(t || 0), enumerable: true });
    Object.defineProperty(this, 'i', { value: Number(i || 0), enumerable: true });
  }
  Timestamp.prototype.toEJSON = function () { return { $timestamp: { t: this.t, i: this.i } }; };
  Timestamp.prototype.inspect = function () { return `Timestamp({ t: ${this.t}, i: ${this.i} })`; };
  Timestamp.prototype.getTime = function () { return this.t; };
  Timestamp.prototype.getInc = function () { return this.i; };

  function MinKey() { if (!(this instanceof MinKey)) return new MinKey(); }
  MinKey.prototype.toEJSON = () => ({ $minKey: 1 });
  MinKey.prototype.inspect = () => 'MinKey()';
  function MaxKey() { if (!(this instanceof MaxKey)) return new MaxKey(); }
  MaxKey.prototype.toEJSON = () => ({ $maxKey: 1 });
  MaxKey.prototype.inspect = () => 'MaxKey()';

  function Code(code, scope) {
    if (!(this instanceof Code)) return new Code(code, scope);
    this.code = String(code);
    if (scope !== undefined) this.scope = scope;
  }
  Code.prototype.toEJSON = function () {
    return this.scope === undefined ? { $code: this.code } : { $code: this.code, $scope: toEJSON(this.scope) };
  };
  Code.prototype.inspect = function () { return `Code('${this.code}')`; };

  // A regular expression BSON allows and JavaScript does not (flags x, l, u).
  function BSONRegExp(pattern, options) {
    if (!(this instanceof BSONRegExp)) return new BSONRegExp(pattern, options);
    this.pattern = pattern;
    this.options = (options || '').split('').sort().join('');
  }
  BSONRegExp.prototype.toEJSON = function () { return { $regularExpression: { pattern: this.pattern, options: this.options } }; };
  BSONRegExp.prototype.inspect = function () { return `BSONRegExp(${quote(this.pattern)}, ${quote(this.options)})`; };

  function ISODate(text) {
    if (text === undefined) return new Date();
    const d = new Date(text);
    if (isNaN(d.getTime())) throw makeError('BSONError', `${JSON.stringify(text)} is not a valid ISODate`);
    return d;
  }
  function NumberInt(v) { return new Int32(v); }
  function NumberLong(v) { return new Long(v); }
  function NumberDecimal(v) { return new Decimal128(v); }

  // --- Extended JSON ------------------------------------------------------

  function doubleString(n) {
    if (Object.is(n, -0)) return '-0.0';
    if (Number.isNaN(n)) return 'NaN';
    if (n === Infinity) return 'Infinity';
    if (n === -Infinity) return '-Infinity';
    return Number.isInteger(n) && Math.abs(n) < 1e21 ? n.toFixed(1) : String(n);
  }

  // A JavaScript value as canonical Extended JSON: whole numbers in 32 bits
  // are int32 and other numbers doubles, as the Node.js driver stores them;
  // `undefined` is null (in a document, left out).
  function toEJSON(v) {
    if (v === null || v === undefined) return null;
    switch (typeof v) {
      case 'number':
        if (Number.isInteger(v) && v >= -2147483648 && v <= 2147483647 && !Object.is(v, -0)) return { $numberInt: String(v) };
        return { $numberDouble: doubleString(v) };
      case 'bigint':
        return { $numberLong: v.toString() };
      case 'string':
      case 'boolean':
        return v;
      case 'function':
      case 'symbol':
        return undefined;
    }
    if (v instanceof Date) return { $date: { $numberLong: String(v.getTime()) } };
    if (v instanceof RegExp) {
      const options = v.flags.split('').filter((f) => 'imsux'.includes(f)).sort().join('');
      return { $regularExpression: { pattern: v.source, options } };
    }
    if (typeof v.toEJSON === 'function') return v.toEJSON();
    if (v instanceof Number || v instanceof String || v instanceof Boolean) return toEJSON(v.valueOf());
    if (v instanceof Database) return v.getName();
    if (Array.isArray(v)) return v.map((x) => { const e = toEJSON(x); return e === undefined ? null : e; });
    const out = {};
    for (const k of Object.keys(v)) {
      if (v[k] === undefined) continue;
      const e = toEJSON(v[k]);
      if (e !== undefined) out[k] = e;
    }
    return out;
  }

  // Canonical (or relaxed) Extended JSON back into the shell's values.
  function fromEJSON(v) {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(fromEJSON);
    const keys = Object.keys(v);
    switch (keys[0]) {
      case '$oid': return new ObjectId(v.$oid);
      case '$numberInt': return parseInt(v.$numberInt, 10);
      case '$numberDouble': return parseFloat(v.$numberDouble);
      case '$numberLong': return new Long(v.$numberLong);
      case '$numberDecimal': return new Decimal128(v.$numberDecimal);
      case '$date': {
        const d = v.$date;
        if (typeof d === 'object' && d !== null) return new Date(Number(d.$numberLong));
        return new Date(d);
      }
      case '$binary': return new Binary(v.$binary.base64, parseInt(v.$binary.subType, 16));
      case '$regularExpression': {
        const { pattern, options } = v.$regularExpression;
        try {
          return new RegExp(pattern, options);
        } catch (e) {
          return new BSONRegExp(pattern, options);
        }
      }
      case '$timestamp': return new Timestamp(v.$timestamp.t, v.$timestamp.i);
      case '$minKey': return new MinKey();
      case '$maxKey': return new MaxKey();
      case '$undefined': return undefined;
      case '$symbol': return v.$symbol;
      case '$code': return new Code(v.$code, v.$scope === undefined ? undefined : fromEJSON(v.$scope));
    }
    const out = {};
    for (const k of keys) out[k] = fromEJSON(v[k]);
    return out;
  }

  const EJSON = {
    stringify(value, replacer, space) { return JSON.stringify(toEJSON(value), replacer, space); },
    parse(text) { return fromEJSON(JSON.parse(text)); },
    serialize: toEJSON,
    deserialize: fromEJSON,
  };

  // --- Output, as mongosh shows values --------------------------------------

  function quote(s) {
    return "'" + String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n') + "'";
  }
  const IDENT = /^[A-Za-z_$][\w$]*$/;

  function inspect(v, indent, seen) {
    indent = indent || '';
    seen = seen || [];
    if (v === null) return 'null';
    if (v === undefined) return 'undefined';
    switch (typeof v) {
      case 'string': return quote(v);
      case 'number': return Object.is(v, -0) ? '-0' : String(v);
      case 'bigint': return `${v}n`;
      case 'boolean': return String(v);
      case 'function': return `[Function: ${v.name || '(anonymous)'}]`;
      case 'symbol': return v.toString();
    }
    if (v instanceof Date) return isNaN(v.getTime()) ? 'Invalid Date' : `ISODate('${v.toISOString()}')`;
    if (v instanceof RegExp) return v.toString();
    if (v instanceof Error) return `${v.name}: ${v.message}`;
    if (typeof v.inspect === 'function') return v.inspect();
    if (seen.includes(v)) return '[Circular]';
    seen = seen.concat([v]);
    const inner = indent + '  ';
    let parts;
    let open;
    let close;
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      parts = v.map((x) => inspect(x, inner, seen));
      open = '[';
      close = ']';
    } else {
      const keys = Object.keys(v);
      if (keys.length === 0) return '{}';
      parts = keys.map((k) => `${IDENT.test(k) ? k : quote(k)}: ${inspect(v[k], inner, seen)}`);
      open = '{';
      close = '}';
    }
    const line = `${open} ${parts.join(', ')} ${close}`;
    if (line.length + indent.length <= 72 && !line.includes('\n')) return line;
    return `${open}\n${parts.map((p) => inner + p).join(',\n')}\n${indent}${close}`;
  }

  function show(v) {
    return typeof v === 'string' ? v : inspect(v);
  }

  function print(...args) { go.out(args.map(show).join(' ')); }
  function printjson(v) { go.out(inspect(v)); }

  // --- The server -----------------------------------------------------------

  // A reply of the server, or a MongoServerError for ok: 0.
  function command(client, dbName, cmd) {
    if (typeof cmd === 'string') cmd = { [cmd]: 1 };
    return fromEJSON(JSON.parse(go.command(client, dbName, JSON.stringify(toEJSON(cmd)))));
  }

  // A write's reply with writeErrors, as the error mongosh throws for it.
  function checkWrite(reply, name) {
    const errs = reply.writeErrors;
    if (errs && errs.length) {
      const first = errs[0];
      throw makeError(name || 'MongoServerError', first.errmsg, {
        code: first.code, writeErrors: errs, result: reply,
      });
    }
    if (reply.writeConcernError) {
      throw makeError('MongoWriteConcernError', reply.writeConcernError.errmsg, { result: reply });
    }
    return reply;
  }

  function Mongo(uri) {
    if (!(this instanceof Mongo)) return new Mongo(uri);
    Object.defineProperty(this, 'client', { value: uri === undefined ? 0 : go.connect(String(uri)) });
    Object.defineProperty(this, 'defaultDB', { value: uri === undefined ? go.defaultDB : go.uriDB(String(uri)) });
  }
  Mongo.prototype.getDB = function (name) { return makeDatabase(this, name); };
  Mongo.prototype.getDBNames = function () {
    return command(this.client, 'admin', { listDatabases: 1, nameOnly: true }).databases.map((d) => d.name);
  };
  Mongo.prototype.adminCommand = function (cmd) { return command(this.client, 'admin', cmd); };
  Mongo.prototype.inspect = function () { return `Mongo(${quote(go.uri(this.client))})`; };
  Mongo.prototype.setReadPref = function () {};
  Mongo.prototype.setSlaveOk = function () {};
  Mongo.prototype.setSecondaryOk = function () {};

  // --- Database ---------------------------------------------------------------

  function Database(mongo, name) {
    Object.defineProperty(this, '_mongo', { value: mongo });
    Object.defineProperty(this, '_name', { value: String(name) });
  }
  const D = Database.prototype;
  D.getName = function () { return this._name; };
  D.toString = function () { return this._name; };
  D.inspect = function () { return this._name; };
  D.getMongo = function () { return this._mongo; };
  D.getSiblingDB = function (name) { return makeDatabase(this._mongo, name); };
  D.getCollection = function (name) { return makeCollection(this, name); };
  D.runCommand = function (cmd) { return command(this._mongo.client, this._name, cmd); };
  D.adminCommand = function (cmd) { return command(this._mongo.client, 'admin', cmd); };
  D.createCollection = function (name, options) {
    return this.runCommand(Object.assign({ create: name }, options || {}));
  };
  D.createView = function (name, source, pipeline, options) {
    return this.runCommand(Object.assign({ create: name, viewOn: source, pipeline }, options || {}));
  };
  D.getCollectionInfos = function (filter, options) {
    const reply = this.runCommand(Object.assign({ listCollections: 1, filter: filter || {} }, options || {}));
    return drain(this, reply.cursor);
  };
  D.getCollectionNames = function () {
    return this.getCollectionInfos({}, { nameOnly: true }).map((c) => c.name).sort();
  };
  D.createUser = function (user, writeConcern) {
    if (!user || typeof user.user !== 'string') throw makeError('MongoshInvalidInputError', 'createUser needs a document with a user name: { user, pwd, roles }');
    const cmd = { createUser: user.user };
    for (const k of Object.keys(user)) if (k !== 'user') cmd[k] = user[k];
    if (cmd.roles === undefined) cmd.roles = [];
    if (writeConcern) cmd.writeConcern = writeConcern;
    return withoutRoles(this, cmd);
  };
  D.updateUser = function (name, update) { return withoutRoles(this, Object.assign({ updateUser: name }, update)); };
  D.changeUserPassword = function (name, pwd) { return this.runCommand({ updateUser: name, pwd }); };
  D.dropUser = function (name) { return this.runCommand({ dropUser: name }); };
  D.dropAllUsers = function () { return this.runCommand({ dropAllUsersFromDatabase: 1 }); };
  D.getUser = function (name) {
    const users = this.runCommand({ usersInfo: { user: name, db: this._name } }).users;
    return users.length ? users[0] : null;
  };
  D.getUsers = function () { return this.runCommand({ usersInfo: 1 }); };
  D.grantRolesToUser = function (name, roles) {
    try {
      return this.runCommand({ grantRolesToUser: name, roles });
    } catch (e) {
      if (!noRoles(e)) throw e;
      warnRoles();
      return { ok: 1 };
    }
  };
  D.revokeRolesFromUser = function (name, roles) { return this.runCommand({ revokeRolesFromUser: name, roles }); };
  D.createRole = function (role) {
    return this.runCommand(Object.assign({ createRole: role.role }, role, { role: undefined }));
  };
  D.auth = function (user, pwd) {
    let mechanism;
    if (user !== null && typeof user === 'object') {
      ({ user, pwd, mechanism } = user);
    }
    go.auth(this._mongo.client, this._name, String(user), String(pwd), mechanism || '');
    return { ok: 1 };
  };
  D.logout = function () { return { ok: 1 }; };
  D.dropDatabase = function () { return this.runCommand({ dropDatabase: 1 }); };
  D.stats = function () { return this.runCommand({ dbStats: 1 }); };
  D.version = function () { return this.adminCommand({ buildInfo: 1 }).version; };
  D.serverStatus = function () { return this.adminCommand({ serverStatus: 1 }); };
  D.serverBuildInfo = function () { return this.adminCommand({ buildInfo: 1 }); };
  D.hello = function () { return this.adminCommand({ hello: 1 }); };
  D.isMaster = function () { return this.adminCommand({ isMaster: 1 }); };
  D.aggregate = function (pipeline, options) {
    return new Cursor(this, null, Object.assign({ aggregate: 1, pipeline: pipeline || [], cursor: {} }, options || {}));
  };
  D.setProfilingLevel = function (level) { return this.runCommand({ profile: level }); };

  // FerretDB (the mongo stand-in's server) has users without roles: every
  // user may do everything. A user command it refuses for its roles is sent
  // again without them, and the shell says so once.
  function noRoles(e) {
    return /roles|not implemented/.test(String(e.message));
  }
  let warnedRoles = false;
  function warnRoles() {
    if (warnedRoles) return;
    warnedRoles = true;
    go.err('mongosh (mongo stand-in): roles are not kept: FerretDB\'s users have none, and each may do everything');
  }
  function withoutRoles(database, cmd) {
    try {
      return database.runCommand(cmd);
    } catch (e) {
      // Without --auth (no MONGO_INITDB_ROOT_USERNAME) FerretDB keeps no
      // users at all, and takes clients without a login.
      if (cmd.createUser && e.codeName === 'CommandNotFound') {
        go.err(`mongosh (mongo stand-in): user ${cmd.createUser} not created: the server runs without authentication (FerretDB keeps users only with it: set MONGO_INITDB_ROOT_USERNAME and _PASSWORD), so clients connect without logging in`);
        return { ok: 1 };
      }
      if (!cmd.roles || !cmd.roles.length || !noRoles(e)) throw e;
      warnRoles();
      return database.runCommand(Object.assign({}, cmd, { roles: [] }));
    }
  }

  function makeDatabase(mongo, name) {
    if (!/^[^/\\. "$]+$/.test(String(name))) {
      throw makeError('MongoshInvalidInputError', `Invalid database name: ${name}`);
    }
    // db.NAME is the collection NAME, unless NAME is a method.
    return new Proxy(new Database(mongo, name), {
      get(target, prop, receiver) {
        if (typeof prop === 'symbol' || prop in target) return Reflect.get(target, prop, receiver);
        return target.getCollection(prop);
      },
    });
  }

  // --- Collection --------------------------------------------------------

  function Collection(database, name) {
    Object.defineProperty(this, '_db', { value: database });
    Object.defineProperty(this, '_name', { value: String(name) });
  }
  const C = Collection.prototype;
  C.getName = function () { return this._name; };
  C.getFullName = function () { return `${this._db.getName()}.${this._name}`; };
  C.toString = function () { return this.getFullName(); };
  C.inspect = function () { return this.getFullName(); };
  C.getDB = function () { return this._db; };
  C.runCommand = function (name, options) {
    return this._db.runCommand(Object.assign({ [name]: this._name }, options || {}));
  };

  function withId(doc) {
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw makeError('MongoshInvalidInputError', 'a document to insert must be an object');
    }
    if (doc._id !== undefined) return doc;
    return Object.assign({ _id: new ObjectId() }, doc);
  }

  C.insertOne = function (doc, options) {
    const d = withId(doc);
    checkWrite(this.runCommand('insert', Object.assign({ documents: [d] }, options || {})));
    return { acknowledged: true, insertedId: d._id };
  };
  C.insertMany = function (docs, options) {
    if (!Array.isArray(docs)) throw makeError('MongoshInvalidInputError', 'insertMany needs an array of documents');
    const ds = docs.map(withId);
    const insertedIds = {};
    ds.forEach((d, i) => { insertedIds[i] = d._id; });
    if (ds.length) {
      const opts = Object.assign({ ordered: true }, options || {});
      checkWrite(this.runCommand('insert', Object.assign({ documents: ds }, opts)), 'MongoBulkWriteError');
    }
    return { acknowledged: true, insertedIds };
  };
  C.insert = function (docs, options) {
    if (Array.isArray(docs)) return this.insertMany(docs, options);
    return this.insertOne(docs, options);
  };
  C.save = function (doc) {
    const d = withId(doc);
    return this.replaceOne({ _id: d._id }, d, { upsert: true });
  };

  function updateResult(reply) {
    const upserted = reply.upserted && reply.upserted.length ? reply.upserted[0]._id : null;
    return {
      acknowledged: true,
      insertedId: upserted,
      matchedCount: Number(reply.n) - (upserted === null ? 0 : 1),
      modifiedCount: Number(reply.nModified || 0),
      upsertedCount: upserted === null ? 0 : 1,
    };
  }
  function update(coll, filter, u, multi, options) {
    const o = options || {};
    const statement = { q: filter || {}, u, multi, upsert: !!o.upsert };
    for (const k of ['arrayFilters', 'collation', 'hint']) if (o[k] !== undefined) statement[k] = o[k];
    return updateResult(checkWrite(coll.runCommand('update', { updates: [statement] })));
  }
  C.updateOne = function (f, u, o) { return update(this, f, u, false, o); };
  C.updateMany = function (f, u, o) { return update(this, f, u, true, o); };
  C.replaceOne = function (f, doc, o) {
    if (Object.keys(doc || {}).some((k) => k[0] === '$')) throw makeError('MongoInvalidArgumentError', 'Replacement document must not contain atomic operators');
    return update(this, f, doc, false, o);
  };
  C.update = function (f, u, o) { return update(this, f, u, !!(o && o.multi), o); };

  function remove(coll, filter, limit, options) {
    const statement = Object.assign({ q: filter || {}, limit }, options || {});
    const reply = checkWrite(coll.runCommand('delete', { deletes: [statement] }));
    return { acknowledged: true, deletedCount: Number(reply.n) };
  }
  C.deleteOne = function (f, o) { return remove(this, f, 1, o); };
  C.deleteMany = function (f, o) { return remove(this, f, 0, o); };
  C.remove = function (f, justOne) {
    const one = justOne === true || (justOne && justOne.justOne);
    return remove(this, f, one ? 1 : 0);
  };

  C.find = function (filter, projection, options) {
    const cmd = Object.assign({ find: this._name, filter: filter || {} }, options || {});
    if (projection) cmd.projection = projection;
    return new Cursor(this._db, this, cmd);
  };
  C.findOne = function (filter, projection, options) {
    const docs = this.find(filter, projection, options).limit(1).toArray();
    return docs.length ? docs[0] : null;
  };
  C.aggregate = function (pipeline, options) {
    if (!Array.isArray(pipeline)) pipeline = Array.prototype.slice.call(arguments);
    const cmd = Object.assign({ aggregate: this._name, pipeline, cursor: {} }, Array.isArray(arguments[0]) ? options || {} : {});
    return new Cursor(this._db, this, cmd);
  };
  C.countDocuments = function (filter, options) {
    const o = options || {};
    const cmd = { query: filter || {} };
    if (o.limit !== undefined) cmd.limit = o.limit;
    if (o.skip !== undefined) cmd.skip = o.skip;
    return Number(this.runCommand('count', cmd).n);
  };
  C.count = function (filter, options) { return this.countDocuments(filter, options); };
  C.estimatedDocumentCount = function () { return Number(this.runCommand('count').n); };
  C.distinct = function (key, filter) {
    return this.runCommand('distinct', { key, query: filter || {} }).values;
  };

  function findAndModify(coll, cmd) {
    const reply = coll.runCommand('findAndModify', cmd);
    return reply.value === undefined ? null : reply.value;
  }
  function famOptions(o) {
    const cmd = {};
    const x = o || {};
    if (x.projection) cmd.fields = x.projection;
    if (x.sort) cmd.sort = x.sort;
    if (x.upsert) cmd.upsert = true;
    if (x.returnDocument === 'after' || x.returnNewDocument || x.new) cmd.new = true;
    if (x.arrayFilters) cmd.arrayFilters = x.arrayFilters;
    return cmd;
  }
  C.findOneAndUpdate = function (f, u, o) {
    return findAndModify(this, Object.assign({ query: f || {}, update: u }, famOptions(o)));
  };
  C.findOneAndReplace = function (f, doc, o) {
    return findAndModify(this, Object.assign({ query: f || {}, update: doc }, famOptions(o)));
  };
  C.findOneAndDelete = function (f, o) {
    return findAndModify(this, Object.assign({ query: f || {}, remove: true }, famOptions(o)));
  };
  C.findAndModify = function (spec) {
    const cmd = {};
    for (const k of Object.keys(spec || {})) cmd[k] = spec[k];
    return findAndModify(this, cmd);
  };

  C.bulkWrite = function (operations, options) {
    const result = {
      acknowledged: true, insertedCount: 0, insertedIds: {}, matchedCount: 0,
      modifiedCount: 0, deletedCount: 0, upsertedCount: 0, upsertedIds: {},
    };
    (operations || []).forEach((op, i) => {
      const [kind] = Object.keys(op);
      const a = op[kind];
      let r;
      switch (kind) {
        case 'insertOne':
          r = this.insertOne(a.document);
          result.insertedCount += 1;
          result.insertedIds[i] = r.insertedId;
          return;
        case 'updateOne': r = this.updateOne(a.filter, a.update, a); break;
        case 'updateMany': r = this.updateMany(a.filter, a.update, a); break;
        case 'replaceOne': r = this.replaceOne(a.filter, a.replacement, a); break;
        case 'deleteOne': result.deletedCount += this.deleteOne(a.filter).deletedCount; return;
        case 'deleteMany': result.deletedCount += this.deleteMany(a.filter).deletedCount; return;
        default: throw makeError('MongoshInvalidInputError', `bulkWrite: unknown operation ${kind}`);
      }
      result.matchedCount += r.matchedCount;
      result.modifiedCount += r.modifiedCount;
      if (r.upsertedCount) {
        result.upsertedCount += 1;
        result.upsertedIds[i] = r.insertedId;
      }
    });
    void options;
    return result;
  };

  function indexName(keys) {
    return Object.keys(keys).map((k) => `${k}_${keys[k]}`).join('_');
  }
  C.createIndexes = function (specs, options, commitQuorum) {
    const indexes = specs.map((keys) => {
      const o = Object.assign({}, options || {});
      return Object.assign({ key: keys, name: o.name || indexName(keys) }, o);
    });
    const cmd = { indexes };
    if (commitQuorum !== undefined) cmd.commitQuorum = commitQuorum;
    this.runCommand('createIndexes', cmd);
    return indexes.map((i) => i.name);
  };
  C.createIndex = function (keys, options, commitQuorum) {
    return this.createIndexes([keys], options, commitQuorum)[0];
  };
  C.ensureIndex = C.createIndex;
  C.getIndexes = function () { return drain(this._db, this.runCommand('listIndexes').cursor); };
  C.getIndexKeys = function () { return this.getIndexes().map((i) => i.key); };
  C.dropIndex = function (index) { return this.runCommand('dropIndexes', { index }); };
  C.dropIndexes = function (indexes) { return this.runCommand('dropIndexes', { index: indexes === undefined ? '*' : indexes }); };
  C.drop = function () {
    try {
      this.runCommand('drop');
      return true;
    } catch (e) {
      if (e.codeName === 'NamespaceNotFound' || e.code === 26) return false;
      throw e;
    }
  };
  C.renameCollection = function (to, dropTarget) {
    return this._db.adminCommand({
      renameCollection: this.getFullName(), to: `${this._db.getName()}.${to}`, dropTarget: !!dropTarget,
    });
  };
  C.stats = function () { return this._db.runCommand({ collStats: this._name }); };
  C.exists = function () {
    const infos = this._db.getCollectionInfos({ name: this._name });
    return infos.length ? infos[0] : null;
  };

  function makeCollection(database, name) {
    if (!String(name) || String(name).includes('$')) {
      throw makeError('MongoshInvalidInputError', `Invalid collection name: ${name}`);
    }
    // db.a.b is the collection a.b, unless b is a method.
    return new Proxy(new Collection(database, name), {
      get(target, prop, receiver) {
        if (typeof prop === 'symbol' || prop in target) return Reflect.get(target, prop, receiver);
        return makeCollection(database, `${name}.${prop}`);
      },
    });
  }

  // --- Cursors --------------------------------------------------------------

  // Every document of a command's cursor ({ firstBatch, id, ns }).
  function drain(database, cursor) {
    const docs = cursor.firstBatch.slice();
    let id = cursor.id;
    const coll = cursor.ns.slice(cursor.ns.indexOf('.') + 1);
    while (Number(id) !== 0) {
      const more = database.runCommand({ getMore: id, collection: coll }).cursor;
      docs.push(...more.nextBatch);
      id = more.id;
    }
    return docs;
  }

  function Cursor(database, coll, cmd) {
    this._db = database;
    this._coll = coll;
    this._cmd = cmd;
    this._buffer = null;
    this._id = null;
    this._ns = null;
    this._maps = [];
  }
  const K = Cursor.prototype;
  function option(name, key) {
    return function (value) {
      if (this._buffer !== null) throw makeError('MongoshInvalidInputError', `Cannot call ${name} after the cursor was read`);
      this._cmd[key || name] = value;
      return this;
    };
  }
  K.limit = option('limit');
  K.skip = option('skip');
  K.sort = option('sort');
  K.projection = option('projection');
  K.project = option('project', 'projection');
  K.batchSize = option('batchSize');
  K.hint = option('hint');
  K.collation = option('collation');
  K.maxTimeMS = option('maxTimeMS');
  K.comment = option('comment');
  K.allowDiskUse = function () { this._cmd.allowDiskUse = true; return this; };
  K.pretty = function () { return this; };
  K.noCursorTimeout = function () { return this; };
  K.readPref = function () { return this; };
  K.map = function (fn) { this._maps.push(fn); return this; };
  K._open = function () {
    if (this._buffer !== null) return;
    const reply = this._db.runCommand(this._cmd).cursor;
    this._buffer = reply.firstBatch.slice();
    this._id = reply.id;
    this._ns = reply.ns;
  };
  K.hasNext = function () {
    this._open();
    while (this._buffer.length === 0 && Number(this._id) !== 0) {
      const coll = this._ns.slice(this._ns.indexOf('.') + 1);
      const more = this._db.runCommand({ getMore: this._id, collection: coll }).cursor;
      this._buffer = more.nextBatch.slice();
      this._id = more.id;
    }
    return this._buffer.length > 0;
  };
  K.next = function () {
    if (!this.hasNext()) throw makeError('MongoCursorExhaustedError', 'Cursor is exhausted');
    return this._maps.reduce((d, fn) => fn(d), this._buffer.shift());
  };
  K.tryNext = function () { return this.hasNext() ? this.next() : null; };
  K.toArray = function () {
    const out = [];
    while (this.hasNext()) out.push(this.next());
    return out;
  };
  K.forEach = function (fn) {
    while (this.hasNext()) if (fn(this.next()) === false) break;
  };
  K.itcount = function () { return this.toArray().length; };
  K.size = function () { return this.toArray().length; };
  K.count = function () {
    if (!this._coll) return this.itcount();
    return this._coll.countDocuments(this._cmd.filter);
  };
  K.isExhausted = function () { return !this.hasNext(); };
  K.close = function () { this._buffer = []; this._id = 0; };
  K[Symbol.iterator] = function* () { while (this.hasNext()) yield this.next(); };
  K.inspect = function () {
    const docs = [];
    while (docs.length < 20 && this.hasNext()) docs.push(this.next());
    const more = this.hasNext() ? '\nType "it" for more' : '';
    return inspect(docs) + more;
  };

  // --- Replica sets -----------------------------------------------------------

  const rs = {
    initiate(config) { return db().adminCommand({ replSetInitiate: config || {} }); },
    status() { return db().adminCommand({ replSetGetStatus: 1 }); },
    conf() { return db().adminCommand({ replSetGetConfig: 1 }).config; },
    config() { return this.conf(); },
    reconfig(config, options) { return db().adminCommand(Object.assign({ replSetReconfig: config }, options || {})); },
    add(host) { throw makeError('MongoshUnimplementedError', `rs.add(${inspect(host)}): the server has no replica sets`); },
    isMaster() { return db().adminCommand({ isMaster: 1 }); },
    hello() { return db().adminCommand({ hello: 1 }); },
  };
  function db() { return global.db; }

  // --- Node.js, as far as scripts for mongosh reach for it -------------------

  const modules = {
    fs: {
      readFileSync(path, options) {
        void options;
        return go.readFile(String(path));
      },
      existsSync(path) { return go.exists(String(path)); },
      readdirSync(path) { return go.readDir(String(path)); },
    },
    path: {
      join(...parts) { return parts.join('/').replace(/\/+/g, '/'); },
      basename(p) { return String(p).replace(/\/+$/, '').split('/').pop(); },
      dirname(p) { const s = String(p).replace(/\/+$/, ''); const i = s.lastIndexOf('/'); return i <= 0 ? (i === 0 ? '/' : '.') : s.slice(0, i); },
      resolve(...parts) { return go.resolve(parts.map(String)); },
    },
    os: {
      hostname() { return go.hostname(); },
      EOL: '\n',
    },
  };
  function require(name) {
    const m = modules[String(name).replace(/^node:/, '')];
    if (!m) throw makeError('Error', `Cannot find module '${name}': this shell (the mongo stand-in's) has no Node.js modules but fs, path and os`);
    return m;
  }

  const console = {
    log: print,
    info: print,
    warn(...args) { go.err(args.map(show).join(' ')); },
    error(...args) { go.err(args.map(show).join(' ')); },
  };

  // --- Shell commands -------------------------------------------------------

  function use(name) {
    global.db = db().getSiblingDB(String(name));
    return `switched to db ${name}`;
  }
  function showCommand(what) {
    switch (what) {
      case 'dbs':
      case 'databases':
        db().adminCommand({ listDatabases: 1 }).databases.forEach((d) => print(`${d.name}  ${d.sizeOnDisk}`));
        return undefined;
      case 'collections':
      case 'tables':
        db().getCollectionNames().forEach((n) => print(n));
        return undefined;
      case 'users':
        db().getUsers().users.forEach((u) => printjson(u));
        return undefined;
      default:
        throw makeError('MongoshInvalidInputError', `'show ${what}' is not supported by this shell`);
    }
  }

  // mongosh's shell commands (`use app`, `show dbs`, `exit`) on a line of
  // their own become calls, so a script for the shell is JavaScript.
  function rewrite(source) {
    return source.split('\n').map((line) => {
      let m = /^\s*use\s+([^\s;]+)\s*;?\s*$/.exec(line);
      if (m) return `use(${JSON.stringify(m[1])});`;
      m = /^\s*show\s+(\w+)\s*;?\s*$/.exec(line);
      if (m) return `__show(${JSON.stringify(m[1])});`;
      if (/^\s*(exit|quit)\s*;?\s*$/.test(line)) return 'quit();';
      return line;
    }).join('\n');
  }

  const exported = {
    ObjectId, Long, Int32, Double, Decimal128, Binary, UUID, BinData, HexData, MD5, Timestamp,
    MinKey, MaxKey, Code, BSONRegExp, ISODate, NumberInt, NumberLong, NumberDecimal, EJSON,
    Mongo, print, printjson, require, console, use, rs, tojson: inspect,
    connect(uri) { const m = new Mongo(uri); return m.getDB(m.defaultDB); },
    quit: go.quit,
    exit: go.quit,
    sleep: go.sleep,
    cat: (path) => go.readFile(String(path)),
    load: (path) => { go.load(String(path)); return true; },
    version: () => go.version,
    hostname: () => go.hostname(),
    getHostName: () => go.hostname(),
    isInteractive: () => false,
    _getEnv: (name) => go.env[name],
    process: { env: go.env, argv: go.argv, exit: go.quit, platform: 'linux' },
    __show: showCommand,
    __rewrite: rewrite,
    __inspect: (v) => inspect(v),
    __makeError: makeError,
  };
  for (const name of Object.keys(exported)) {
    Object.defineProperty(global, name, { value: exported[name], writable: true, configurable: true });
  }
  global.db = go.nodb ? undefined : new Mongo().getDB(go.defaultDB);
})(globalThis);
