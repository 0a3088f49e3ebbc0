// facepp terminal: webcam capture into the form's file input (no inline script: CSP script-src 'self').
// Captured frames become JPEG File objects in <input type=file name=image>, so the form posts them
// like uploads; nothing is stored in the browser beyond the page's lifetime.
"use strict";

(function () {
  function setupCapture(box) {
    const video = box.querySelector("#camera-video");
    const start = box.querySelector("#camera-start");
    const capture = box.querySelector("#camera-capture");
    const status = box.querySelector("#camera-status");
    const input = box.querySelector("#image-input");
    const thumbs = box.querySelector("#thumbs");
    const multiple = box.dataset.multiple === "true";
    let captured = [];
    let stream = null;

    function say(text) { status.textContent = text; }

    function syncInput() {
      const dt = new DataTransfer();
      const chosen = multiple ? captured : captured.slice(-1);
      chosen.forEach((f) => dt.items.add(f));
      input.files = dt.files;
      thumbs.replaceChildren();
      chosen.forEach((f) => {
        const img = document.createElement("img");
        img.src = URL.createObjectURL(f);
        img.alt = f.name;
        img.className = "thumb";
        img.onload = () => URL.revokeObjectURL(img.src);
        thumbs.appendChild(img);
      });
      say(chosen.length + " capture(s) ready");
    }

    start.addEventListener("click", async () => {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        say("No camera API: use https or localhost, or upload a file.");
        return;
      }
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
        video.srcObject = stream;
        await video.play();
        capture.disabled = false;
        say("Camera on");
      } catch (err) {
        say("Camera unavailable (" + err.name + "): upload a file instead.");
      }
    });

    capture.addEventListener("click", () => {
      if (!video.videoWidth) { say("Camera not ready yet"); return; }
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob((blob) => {
        if (!blob) { say("Capture failed"); return; }
        captured.push(new File([blob], "webcam-" + (captured.length + 1) + ".jpg", { type: "image/jpeg" }));
        syncInput();
      }, "image/jpeg", 0.92);
    });

    input.addEventListener("change", () => {
      // A file chosen by hand replaces the captures.
      if (input.files.length && !Array.from(input.files).every((f) => f.name.startsWith("webcam-"))) {
        captured = [];
        thumbs.replaceChildren();
        say(input.files.length + " file(s) chosen");
      }
    });

    window.addEventListener("pagehide", () => { if (stream) stream.getTracks().forEach((t) => t.stop()); });
  }

  function setupConfirm() {
    document.querySelectorAll("button[data-confirm]").forEach((button) => {
      button.addEventListener("click", (event) => {
        if (!window.confirm(button.dataset.confirm)) event.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-capture]").forEach(setupCapture);
    setupConfirm();
  });
})();
