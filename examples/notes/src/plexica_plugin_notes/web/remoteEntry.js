// The notes plugin's module-federation container (an ES-module remote, written by hand so the
// example needs no bundler). A shell calls init(sharedScope), then get("./NotesList") for a factory
// returning the module; each module exports mount(element, api) and returns an unmount function.
let shared = {};

async function listNotes(api) {
  const response = await api.fetch("/api/plugins/notes/notes");
  return response.ok ? (await response.json()).items ?? [] : [];
}

const modules = {
  "./NotesList": () => ({
    async mount(element, api) {
      const list = element.ownerDocument.createElement("ul");
      for (const note of await listNotes(api)) {
        const item = element.ownerDocument.createElement("li");
        item.textContent = note.title;
        list.append(item);
      }
      element.replaceChildren(list);
      return () => element.replaceChildren();
    },
  }),
  "./NoteEditor": () => ({
    mount(element, api) {
      const form = element.ownerDocument.createElement("form");
      const title = element.ownerDocument.createElement("input");
      title.name = "title";
      form.append(title);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        await api.fetch("/api/plugins/notes/notes", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ title: title.value, body: "" }),
        });
      });
      element.replaceChildren(form);
      return () => element.replaceChildren();
    },
  }),
};

export function init(scope) {
  shared = scope ?? {};
}

export async function get(name) {
  const factory = modules[name];
  if (factory === undefined) {
    throw new Error(`notes does not expose ${name}`);
  }
  return factory;
}
