// CSV in the challenge's X_test_update.csv layout (RFC 4180: quoted fields may hold commas, quotes and
// line breaks), read in the browser so that a large file can be sent in chunks.

const REQUIRED = ["designation", "description", "productid", "imageid"];

export class CsvError extends Error {}

/** Rows of fields of a CSV text. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') { field += '"'; i += 1; }
      else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") { row.push(field); field = ""; }
    else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += char;
  }
  if (quoted) throw new CsvError("un champ entre guillemets n'est jamais refermé");
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows.filter((fields) => fields.length > 1 || fields[0] !== "");
}

function integer(value, column, line) {
  const text = String(value).trim().replace(/\.0+$/, "");
  if (!/^-?\d+$/.test(text)) throw new CsvError(`ligne ${line} : ${column} doit être un entier (« ${value} »)`);
  return Number(text);
}

/** Products of a CSV in the X_test_update.csv layout: {index, designation, description, productid, imageid}. */
export function readProducts(text) {
  const [header, ...rows] = parseCsv(text);
  if (!header || header[0] !== "") throw new CsvError("la première colonne doit être l'index, sans nom (comme X_test_update.csv)");
  const position = Object.fromEntries(REQUIRED.map((name) => [name, header.indexOf(name)]));
  const missing = REQUIRED.filter((name) => position[name] < 0);
  if (missing.length) throw new CsvError(`colonnes manquantes : ${missing.join(", ")}`);
  const seen = new Set();
  return rows.map((fields, row) => {
    const line = row + 2;
    const index = fields[0];
    if (seen.has(index)) throw new CsvError(`ligne ${line} : l'index ${index} apparaît deux fois`);
    seen.add(index);
    const designation = fields[position.designation] || "";
    if (!designation.trim()) throw new CsvError(`ligne ${line} : le titre (designation) est vide`);
    return {
      index,
      designation,
      description: fields[position.description] || null,
      productid: integer(fields[position.productid], "productid", line),
      imageid: integer(fields[position.imageid], "imageid", line),
    };
  });
}

/** The challenge's submission file: an unnamed index column and prdtypecode. */
export function submissionCsv(results) {
  const quote = (value) => (/[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value);
  return [",prdtypecode", ...results.map((r) => `${quote(r.index)},${r.prdtypecode}`)].join("\n") + "\n";
}
