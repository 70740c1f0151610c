// The pages opened from mailed links: take ?token= and POST it on submit.
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  document.getElementById("token").value = token;
  const form = document.querySelector("form");
  const status = document.getElementById("status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form).entries());
    const response = await fetch(form.dataset.action, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.ok) {
      status.textContent = "Done. You can go back to Skill Share.";
      form.hidden = true;
    } else {
      const error = (await response.json()).error;
      status.textContent = error.message;
    }
  });
})();
