// A small express app written in TypeScript and run by Node.js itself, as
// Node.js 22.18 and later run a .ts file (its types stripped, not checked):
// its page says which Node.js and which user serve it.
import express, { type Request, type Response } from "express";
import { userInfo } from "node:os";

const app = express();
const port: number = Number(process.env.PORT ?? 3000);

app.get("/", (_req: Request, res: Response): void => {
  res.type("text/plain").send(`hello from node ${process.version} as ${userInfo().username}\n`);
});

app.listen(port, () => console.log(`listening on ${port}`));
