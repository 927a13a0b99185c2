// CivicBot local web chat. No dependencies: talks to POST /api/web/messages (and
// /api/web/photos), and polls GET /api/updates for notifications (ticket progress, answers
// of officials) sent later. The session is the server's HttpOnly cookie: this page never
// sees or sends a session id.
(function () {
  "use strict";

  var API = "/api/web/messages";
  var PHOTO_API = "/api/web/photos";
  var SESSION_API = "/api/web/session";
  var UPDATES_API = "/api/updates";
  var OLD_SESSION_KEY = "civicbot.session";  // ids chosen by older pages: no longer used
  var HISTORY_KEY = "civicbot.history";
  var AFTER_KEY = "civicbot.updates_after";
  var POLL_MS = 4000;
  var MAX_POLL_MS = 60000;
  var MAX_CHARS = 10000;
  var MAX_HISTORY = 200;
  var MAX_PHOTO_BYTES = 10 * 1024 * 1024;
  var PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];
  var RETRY_DELAYS = [1000, 3000];

  var scroller = document.getElementById("scroller");
  var list = document.getElementById("messages");
  var intro = document.getElementById("intro");
  var typing = document.getElementById("typing");
  var toast = document.getElementById("toast");
  var form = document.getElementById("composer");
  var input = document.getElementById("text");
  var sendButton = document.getElementById("send");
  var locationButton = document.getElementById("location");
  var photoButton = document.getElementById("photo");
  var photoInput = document.getElementById("photo-file");
  var resetButton = document.getElementById("reset");

  var memory = {};
  var store = {
    get: function (key) {
      try { return window.localStorage.getItem(key); } catch (e) { return memory[key] || null; }
    },
    set: function (key, value) {
      try { window.localStorage.setItem(key, value); } catch (e) { memory[key] = value; }
    },
    remove: function (key) {
      try { window.localStorage.removeItem(key); } catch (e) { delete memory[key]; }
    }
  };

  function newId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  var history = [];
  try { history = JSON.parse(store.get(HISTORY_KEY) || "[]"); } catch (e) { history = []; }
  if (!Array.isArray(history)) history = [];

  function saveHistory() {
    if (history.length > MAX_HISTORY) history = history.slice(-MAX_HISTORY);
    // A photo's preview is a blob: URL of this page only, not worth keeping.
    store.set(HISTORY_KEY, JSON.stringify(history, function (key, value) {
      return key === "preview" ? undefined : value;
    }));
  }

  // --- Rendering ---------------------------------------------------------------------

  var URL_PATTERN = /(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]])/g;

  function appendText(parent, text) {
    var last = 0;
    text.replace(URL_PATTERN, function (url, _group, offset) {
      if (offset > last) parent.appendChild(document.createTextNode(text.slice(last, offset)));
      var link = document.createElement("a");
      link.href = url;
      link.textContent = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      parent.appendChild(link);
      last = offset + url.length;
      return url;
    });
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function safeImage(url) {
    return typeof url === "string" && (/^https?:\/\//i.test(url) || /^\/[^/]/.test(url));
  }

  function render(entry) {
    var item = document.createElement("li");
    item.className = "msg " + (entry.from === "user" ? "user" : "bot") +
      (entry.failed ? " failed" : "");
    var bubble = document.createElement("div");
    bubble.className = "bubble";
    if (entry.preview && /^blob:/.test(entry.preview)) {
      var photo = document.createElement("img");
      photo.src = entry.preview;
      photo.alt = "Ảnh anh/chị đã gửi";
      bubble.appendChild(photo);
    } else if (entry.image_url && safeImage(entry.image_url)) {
      var image = document.createElement("img");
      image.src = entry.image_url;
      image.alt = "Hình ảnh";
      image.loading = "lazy";
      bubble.appendChild(image);
    }
    if (entry.text) appendText(bubble, entry.text);
    item.appendChild(bubble);
    if (entry.buttons && entry.buttons.length) {
      var chips = document.createElement("div");
      chips.className = "chips";
      entry.buttons.forEach(function (button) {
        var chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.textContent = button.label;
        chip.addEventListener("click", function () {
          chip.classList.add("chosen");
          send({ button: button.data, text: button.label }, button.label);
        });
        chips.appendChild(chip);
      });
      item.appendChild(chips);
    }
    return item;
  }

  function refreshChips() {
    var items = list.children;
    for (var i = 0; i < items.length; i++) {
      var live = i === items.length - 1 && items[i].classList.contains("bot") && !busy;
      var chips = items[i].querySelectorAll(".chip");
      for (var j = 0; j < chips.length; j++) chips[j].disabled = !live;
    }
  }

  function scrollToEnd() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  function add(entry, keep) {
    intro.hidden = true;
    var item = render(entry);
    list.appendChild(item);
    if (keep !== false) {
      history.push(entry);
      saveHistory();
    }
    refreshChips();
    scrollToEnd();
    return item;
  }

  function showError(message) {
    toast.textContent = message;
    toast.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(function () { toast.hidden = true; }, 8000);
  }

  // --- Sending -----------------------------------------------------------------------

  var busy = false;

  function setBusy(value) {
    busy = value;
    sendButton.disabled = value;
    locationButton.disabled = value;
    photoButton.disabled = value;
    typing.hidden = !value;
    refreshChips();
    if (value) scrollToEnd();
  }

  function wait(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // One message, retried with the same message_id: the server handles it once.
  function post(url, headers, body) {
    var attempt = 0;
    function once() {
      return fetch(url, {
        method: "POST",
        headers: headers,
        credentials: "same-origin",
        body: body
      }).then(function (response) {
        if ([502, 503, 504].indexOf(response.status) >= 0 && attempt < RETRY_DELAYS.length) {
          return wait(RETRY_DELAYS[attempt++]).then(once);
        }
        return response.json().catch(function () { return null; }).then(function (data) {
          return { status: response.status, data: data };
        });
      }, function (error) {
        if (attempt < RETRY_DELAYS.length) return wait(RETRY_DELAYS[attempt++]).then(once);
        throw error;
      });
    }
    return once();
  }

  function send(fields, shown) {
    if (busy) return Promise.resolve(false);
    var body = { message_id: newId() };
    Object.keys(fields).forEach(function (key) { body[key] = fields[key]; });
    return deliver(
      post(API, { "Content-Type": "application/json" }, JSON.stringify(body)),
      { from: "user", text: shown },
      fields.text && !fields.button ? fields.text : null
    );
  }

  // Shows the citizen's message, then the replies or why it failed; `unsent` is text to put
  // back in the box when it was refused (over a rate limit, say), so nothing typed is lost.
  function deliver(request, entry, unsent) {
    var mine = add(entry);
    function failed(message, status) {
      entry.failed = true;
      saveHistory();
      mine.classList.add("failed");
      if (unsent && !input.value.trim() && status !== 200) {
        input.value = unsent;
        autosize();
      }
      showError(message);
      return false;
    }
    setBusy(true);
    toast.hidden = true;
    return request.then(function (result) {
      if (result.status === 200 && Array.isArray(result.data)) {
        result.data.forEach(function (reply) {
          add({
            from: "bot",
            text: reply.text || "",
            buttons: Array.isArray(reply.buttons) ? reply.buttons : [],
            image_url: reply.image_url || null
          });
        });
        return true;
      }
      return failed((result.data && result.data.message) ||
        "Không gửi được tin nhắn (mã lỗi " + result.status + ").", result.status);
    }, function () {
      return failed("Không kết nối được máy chủ. Anh/chị kiểm tra mạng rồi thử lại.");
    }).then(function (ok) {
      setBusy(false);
      input.focus();
      return ok;
    });
  }

  function sendText() {
    var text = input.value.trim();
    if (!text || busy) return;
    if (text.length > MAX_CHARS) {
      showError("Tin nhắn dài quá 10.000 ký tự. Anh/chị vui lòng rút gọn.");
      return;
    }
    input.value = "";
    autosize();
    send({ text: text }, text);
  }

  function sendLocation() {
    if (!window.isSecureContext || !navigator.geolocation) {
      showError("Trình duyệt không cho phép lấy vị trí trên trang này.");
      return;
    }
    locationButton.disabled = true;
    navigator.geolocation.getCurrentPosition(function (position) {
      locationButton.disabled = busy;
      var lat = Math.round(position.coords.latitude * 1e6) / 1e6;
      var lon = Math.round(position.coords.longitude * 1e6) / 1e6;
      send({ location: { lat: lat, lon: lon } }, "📍 Vị trí của tôi: " + lat + ", " + lon);
    }, function (error) {
      locationButton.disabled = busy;
      var reasons = {
        1: "Anh/chị chưa cho phép trình duyệt truy cập vị trí.",
        2: "Không xác định được vị trí hiện tại.",
        3: "Lấy vị trí quá lâu, anh/chị thử lại nhé."
      };
      showError(reasons[error.code] || "Không lấy được vị trí.");
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  }

  function sendPhoto(file) {
    if (!file || busy) return;
    if (PHOTO_TYPES.indexOf(file.type) < 0) {
      showError("Anh/chị vui lòng chọn ảnh JPEG, PNG hoặc WebP.");
      return;
    }
    if (file.size > MAX_PHOTO_BYTES) {
      showError("Ảnh lớn quá 10 MB. Anh/chị vui lòng chọn ảnh nhỏ hơn.");
      return;
    }
    var preview = window.URL && window.URL.createObjectURL ? URL.createObjectURL(file) : null;
    deliver(
      post(PHOTO_API, { "Content-Type": file.type, "X-Message-Id": newId() }, file),
      { from: "user", text: "Ảnh đã gửi", preview: preview },
      null
    );
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, window.innerHeight * 0.4) + "px";
  }

  // --- Notifications: the web has no push, so the page asks every few seconds -----------

  var pollTimer = null;
  var generation = 0;  // a new conversation drops the answers of polls still under way
  var pollDelay = POLL_MS;
  var polling = false;

  function schedulePoll(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  function poll() {
    if (polling) return;
    if (document.hidden) { schedulePoll(POLL_MS); return; }
    polling = true;
    var session = generation;
    var after = store.get(AFTER_KEY) || "0";
    var url = UPDATES_API + "?after=" + encodeURIComponent(after);
    fetch(url, {
      headers: { "Accept": "application/json" }, cache: "no-store", credentials: "same-origin"
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (session !== generation || !data || !Array.isArray(data.messages)) return;
        data.messages.forEach(function (message) {
          add({
            from: "bot",
            text: message.text || "",
            buttons: Array.isArray(message.buttons) ? message.buttons : [],
            image_url: message.image_url || null
          });
        });
        if (typeof data.after === "number") store.set(AFTER_KEY, String(data.after));
        pollDelay = POLL_MS;
      })
      .catch(function () {
        pollDelay = Math.min(pollDelay * 2, MAX_POLL_MS);  // server away: ask less often
      })
      .then(function () {
        polling = false;
        schedulePoll(pollDelay);
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) schedulePoll(0);
  });

  // --- Wiring ------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sendText();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendText();
    }
  });
  input.addEventListener("input", autosize);
  locationButton.addEventListener("click", sendLocation);
  photoButton.addEventListener("click", function () { photoInput.click(); });
  photoInput.addEventListener("change", function () {
    var file = photoInput.files && photoInput.files[0];
    photoInput.value = "";
    sendPhoto(file);
  });
  resetButton.addEventListener("click", function () {
    if (!window.confirm("Bắt đầu cuộc trò chuyện mới? Tin nhắn cũ trên máy này sẽ bị xoá.")) return;
    fetch(SESSION_API, { method: "POST", credentials: "same-origin" }).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return null; }).then(function (data) {
          showError((data && data.message) || "Chưa bắt đầu được cuộc trò chuyện mới.");
        });
      }
      generation++;
      store.remove(HISTORY_KEY);
      store.remove(AFTER_KEY);
      history = [];
      list.textContent = "";
      intro.hidden = false;
      toast.hidden = true;
      input.focus();
    }, function () {
      showError("Không kết nối được máy chủ. Anh/chị kiểm tra mạng rồi thử lại.");
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".suggestions .chip"), function (chip) {
    chip.addEventListener("click", function () {
      send({ text: chip.getAttribute("data-text") }, chip.getAttribute("data-text"));
    });
  });

  history.forEach(function (entry) { add(entry, false); });
  store.remove(OLD_SESSION_KEY);
  schedulePoll(0);
})();
