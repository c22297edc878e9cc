// Loaded first, as a classic script: starts reading the mesh while the page's modules and
// the graph library are still loading (app.js takes the answer from window.bzzzBoot).
window.bzzzBoot = {
  mesh: fetch('/api/v1/mesh', {headers: {accept: 'application/json'}, cache: 'no-store'})
    .then((resp) => (resp.ok ? resp.json() : null), () => null),
};
