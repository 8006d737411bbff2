// Copy text for the user. The Clipboard API exists only in a secure context (https, or
// http on loopback), and a homelab dashboard is often opened as http://<lan address>; there
// the old way (select a hidden textarea, `execCommand('copy')`) still works in every browser.

/** Copy `text`; resolves to whether it reached the clipboard. */
export async function copyText(text: string): Promise<boolean> {
	if (window.isSecureContext && navigator.clipboard?.writeText) {
		try {
			await navigator.clipboard.writeText(text);
			return true;
		} catch {
			// refused (permissions, no focus): try the old way
		}
	}
	return copyBySelection(text);
}

function copyBySelection(text: string): boolean {
	const area = document.createElement('textarea');
	area.value = text;
	area.setAttribute('readonly', '');
	area.setAttribute('aria-hidden', 'true');
	area.tabIndex = -1;
	// Off screen but still selectable (display:none would not be).
	area.style.position = 'fixed';
	area.style.top = '0';
	area.style.left = '-9999px';
	area.style.opacity = '0';
	const focused = document.activeElement as HTMLElement | null;
	document.body.appendChild(area);
	area.select();
	let done = false;
	try {
		done = document.execCommand('copy');
	} catch {
		done = false;
	}
	area.remove();
	focused?.focus(); // the user's place (the copy button) stays where it was
	return done;
}
