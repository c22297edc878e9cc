// Loaded first, as a classic script: starts reading the mesh while the page's modules and
// the graph library are still loading (app.js takes the answer from window.bzzzBoot).
// (A monitor beyond loopback wants the viewer token api.js keeps; without it this answers
// null and app.js asks through api.js.)
window.bzzzBoot = {
  mesh: (() => {
    let token = '';
    try {
      token = localStorage.getItem('bzzz.monitor.viewer') || '';
    } catch (_) { /* storage disabled */ }
    const headers = token ? {accept: 'application/json', authorization: `Bearer ${token}`}
      : {accept: 'application/json'};
    return fetch('/api/v1/mesh', {headers, cache: 'no-store'})
      .then((resp) => (resp.ok ? resp.json() : null), () => null);
  })(),
};
