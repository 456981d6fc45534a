// Lookout's only script: progressive enhancements. Every page works without it.
(function () {
  // Project switcher: submit on change (the form also has a button for no-JS use).
  document.querySelectorAll('select[data-autosubmit]').forEach(function (s) {
    s.addEventListener('change', function () { s.form.submit(); });
    var b = s.form.querySelector('button'); if (b) b.hidden = true;
  });
  // Copy buttons: <button class="copy" data-copy="text">.
  document.querySelectorAll('button[data-copy]').forEach(function (b) {
    b.addEventListener('click', function () {
      if (navigator.clipboard) navigator.clipboard.writeText(b.dataset.copy).then(function () { b.textContent = 'Copied'; });
    });
  });
  // Destructive forms ask first: <form data-confirm="question">.
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) { if (!window.confirm(f.dataset.confirm)) e.preventDefault(); });
  });
  // Times: the server writes the absolute time in UTC as the tooltip of a relative time;
  // show it in the viewer's own zone instead.
  document.querySelectorAll('time[datetime][title]').forEach(function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (isNaN(d)) return;
    try {
      t.title = d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit',
        minute: '2-digit', second: '2-digit', timeZoneName: 'short' });
    } catch (e) { /* an engine without these options keeps the server's UTC text */ }
  });
  // Chart tooltips from data-tip, following the pointer.
  var tip = document.getElementById('tip');
  if (!tip) return;
  document.querySelectorAll('[data-tip]').forEach(function (el) {
    el.addEventListener('mousemove', function (e) {
      tip.textContent = el.getAttribute('data-tip');
      tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
      tip.style.display = 'block';
    });
    el.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  });
})();
// Forms whose fields depend on a choice: <select data-shows> shows only the [data-for] fields
// whose list names the chosen value (the channel form's fields per type). Inside a
// [data-scope] element (an alert policy's condition row) the choice governs that element only.
(function () {
  document.querySelectorAll('select[data-shows]').forEach(function (s) {
    var scope = s.closest('[data-scope]') || s.form;
    var show = function () {
      scope.querySelectorAll('[data-for]').forEach(function (el) {
        el.hidden = el.getAttribute('data-for').split(' ').indexOf(s.value) < 0;
      });
    };
    s.addEventListener('change', show); show();
  });
})();
